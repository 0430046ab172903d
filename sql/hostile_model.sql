-- Model bytes behind a valid checksum that no version-1 writer produces: a
-- non-zero flag or reserved field (a later writer's) is refused, not
-- misread; parameters that overflow a new user's vector give an error, not
-- an answer that depends on the CPU (issue 17)
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.crc32c(b bytea) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  crc bigint := 4294967295;
BEGIN
  FOR i IN 0 .. length(b) - 1 LOOP
    crc := crc # get_byte(b, i);
    FOR j IN 1 .. 8 LOOP
      crc := CASE WHEN crc & 1 = 1 THEN (crc >> 1) # 2197175160 ELSE crc >> 1 END;
    END LOOP;
  END LOOP;
  RETURN crc # 4294967295;
END $$;
-- the bytes with their CRC recomputed
CREATE FUNCTION pg_temp.reseal(m bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT overlay(m PLACING set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea,
           0, (c & 255)::int), 1, ((c >> 8) & 255)::int), 2, ((c >> 16) & 255)::int), 3, (c >> 24)::int)
         FROM length(m) - 3)
  FROM pg_temp.crc32c(substring(m FROM 1 FOR length(m) - 4)) AS c $$;
-- byte pos (from 0) set to v, resealed
CREATE FUNCTION pg_temp.poke(m bytea, pos int, v int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT pg_temp.reseal(set_byte(m, pos, v)) $$;
-- the little-endian uint64 at pos
CREATE FUNCTION pg_temp.u64(m bytea, pos int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT sum(get_byte(m, pos + i)::bigint << (8 * i))::bigint FROM generate_series(0, 6) i $$;
-- SQLSTATE, message and hint of q's error
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; hint text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || ' (hint: ' || hint || ')';
END $$;

CREATE TABLE hm_data AS
  SELECT r.*, 20 + r.user_id % 40 AS age, CASE WHEN r.user_id % 2 = 0 THEN 'F' ELSE 'M' END AS gender,
         'job' || r.user_id % 3 AS job
  FROM lfg_synthetic_ratings(60, 30, 900, 23) r;
CREATE TABLE hm AS
  SELECT 'biassvd' AS kind, lfg_fit(user_id, item_id, rating, '{"factors": 3, "epochs": 2, "seed": 1}') AS m
    FROM hm_data
  UNION ALL
  SELECT 'lfg', lfg_fit(user_id, item_id, rating, age, gender, job,
                        '{"hidden": [8, 8], "factors": 3, "epochs": 2, "seed": 1}')
    FROM hm_data;
-- the test's CRC is PostgreSQL's: resealing changes nothing, and the models load
SELECT kind, pg_temp.reseal(m) = m AS same_crc, pg_temp.err(format('SELECT lfg_model_info(%L)', m)) AS decodes
  FROM hm ORDER BY kind;

-- header flags (offset 36), reserved1 (52), reserved2 (56): zero in version 1
SELECT kind, pos, v, pg_temp.err(format('SELECT lfg_model_info(%L)', pg_temp.poke(m, pos, v))) AS refused
  FROM hm, (VALUES (36, 1), (39, 128), (52, 1), (56, 1), (63, 128)) AS p(pos, v)
  ORDER BY kind, pos;
-- the reserved field of a section table entry (offset 4 of each 24-byte entry)
SELECT kind, entry, pg_temp.err(format('SELECT lfg_model_info(%L)', pg_temp.poke(m, 64 + 24 * entry + 4, 1))) AS refused
  FROM hm, (VALUES (0), (5)) AS e(entry)
  ORDER BY kind, entry;
-- the reserved words of an lfg model's generator configuration (entry 6, offset 52)
SELECT pg_temp.err(format('SELECT lfg_model_info(%L)', pg_temp.poke(m, pg_temp.u64(m, 64 + 24 * 6 + 8)::int + 52 + w, 1))) AS refused
  FROM hm, generate_series(0, 8, 4) AS w WHERE kind = 'lfg';
-- nor can such bytes be stored
INSERT INTO lfg.models (name, model) SELECT 'hm', pg_temp.poke(m, 36, 2) FROM hm WHERE kind = 'biassvd';

-- item 1's bias set to 3e38 (finite, with a valid checksum): scores could
-- overflow, so the decoder refuses the bytes (doc/model-format.md, check 20a)
SELECT min(item_id) = 1 AS item_1_is_dense_0 FROM hm_data;
INSERT INTO lfg.models (name, model)
  SELECT 'hm_big', pg_temp.reseal(overlay(m PLACING '\xe6b1617f'::bytea
                                          FROM pg_temp.u64(m, 64 + 24 * 5 + 8)::int + 1))
  FROM hm WHERE kind = 'biassvd';
-- at 1e29 the bytes are within the bound, and every serving function
-- answers with finite scores, with a small fold-in regularisation too (the
-- refusal of a user vector that is not finite is unit-tested in test_net)
INSERT INTO lfg.models (name, model)
  SELECT 'hm_big', pg_temp.reseal(overlay(m PLACING '\x088fa16f'::bytea
                                          FROM pg_temp.u64(m, 64 + 24 * 5 + 8)::int + 1))
  FROM hm WHERE kind = 'biassvd';
SELECT count(*) AS served_with_default_reg
  FROM lfg_recommend('hm_big', '{"1": 3, "2": 3}', NULL::float8, NULL, NULL, 5);
SET lfg.foldin_reg = 0.001;
SELECT pg_temp.err($$SELECT * FROM lfg_recommend('hm_big', '{"1": 3, "2": 3}', NULL::float8, NULL, NULL, 5)$$) AS recommend;
SELECT pg_temp.err($$SELECT lfg_predict('hm_big', '{"1": 3, "2": 3}', NULL::float8, NULL, NULL, '{2, 3}')$$) AS predict;
SELECT pg_temp.err($$SELECT lfg_user_factors('hm_big', '{"1": 3, "2": 3}', NULL::float8, NULL, NULL)$$) AS user_factors;
RESET lfg.foldin_reg;

-- an age beyond what lfg_fit accepts (1e300 is infinite as a float) is refused at serving too
INSERT INTO lfg.models (name, model) SELECT 'hm_lfg', m FROM hm WHERE kind = 'lfg';
SELECT pg_temp.err($$SELECT * FROM lfg_recommend('hm_lfg', '{"1": 3}', 1e300, 'F', 'job1', 5)$$) AS huge_age;
SELECT count(*) AS served_at_age_1000000
  FROM lfg_recommend('hm_lfg', '{"1": 3}', 1e6, 'F', 'job1', 5);

DELETE FROM lfg.models WHERE name IN ('hm_big', 'hm_lfg');
DROP TABLE hm, hm_data;
