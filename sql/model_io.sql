-- Corrupt, truncated or foreign model bytes are refused before use
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
\set SHOW_CONTEXT never
CREATE TABLE good AS
  SELECT lfg_fit(user_id, item_id, rating, '{"factors": 3, "epochs": 2}') AS m
  FROM lfg_synthetic_ratings(20, 16, 150, 2);
INSERT INTO lfg.models (name, model) SELECT 'io', m FROM good;
SELECT substring(m from 1 for 4) AS magic, length(m) FROM good;

-- foreign bytes
INSERT INTO lfg.models (name, model) VALUES ('io', '\x00');
INSERT INTO lfg.models (name, model) VALUES ('io', '\x504b0304140000000800');
INSERT INTO lfg.models (name, model) VALUES ('io', convert_to('LFGM but not a model at all, just some text', 'UTF8'));
SELECT lfg_model_info('');
-- truncated
INSERT INTO lfg.models (name, model) SELECT 'io', substring(m from 1 for length(m) - 1) FROM good;
INSERT INTO lfg.models (name, model) SELECT 'io', substring(m from 1 for 40) FROM good;
-- extended
INSERT INTO lfg.models (name, model) SELECT 'io', m || '\x00'::bytea FROM good;
-- a flipped bit in the payload, in the header, in the checksum
-- (terse: the detail shows checksums, which vary with the BLAS build)
\set VERBOSITY terse
INSERT INTO lfg.models (name, model) SELECT 'io', set_byte(m, 200, get_byte(m, 200) # 16) FROM good;
INSERT INTO lfg.models (name, model) SELECT 'io', set_byte(m, 9, get_byte(m, 9) # 1) FROM good;
INSERT INTO lfg.models (name, model) SELECT 'io', set_byte(m, length(m) - 1, get_byte(m, length(m) - 1) # 128) FROM good;
\set VERBOSITY default

-- the error codes
SELECT pg_temp.sqlstate($$SELECT lfg_model_info('\x504b0304')$$) AS foreign_bytes,
       pg_temp.sqlstate($$SELECT lfg_model_info(substring(m from 1 for length(m) - 8)) FROM good$$) AS truncated,
       pg_temp.sqlstate($$SELECT lfg_model_info(set_byte(m, 300, get_byte(m, 300) # 4)) FROM good$$) AS bit_flip,
       pg_temp.sqlstate($$SELECT lfg_model_info(m) FROM good$$) AS intact;

-- every single-byte corruption of the first 120 bytes and every truncation is refused
SELECT count(*) FILTER (WHERE pg_temp.sqlstate(format('SELECT lfg_model_info(%L::bytea)',
           set_byte(m, pos, get_byte(m, pos) # 255))) NOT IN ('XX001', '22P03')) AS accepted_flips,
       count(*) FILTER (WHERE pg_temp.sqlstate(format('SELECT lfg_model_info(%L::bytea)',
           substring(m from 1 for pos))) <> '22P03') AS accepted_truncations
  FROM good, generate_series(0, 119) AS pos;

-- bytes corrupted after they were stored are refused at first use
INSERT INTO lfg.models (name, model) SELECT 'io2', m FROM good;
SELECT lfg_predict('io2', 1, 1) BETWEEN 1 AND 5 AS serves;
ALTER TABLE lfg.models DISABLE TRIGGER models_fill;
UPDATE lfg.models SET model = set_byte(model, 150, get_byte(model, 150) # 2) WHERE name = 'io2';
ALTER TABLE lfg.models ENABLE TRIGGER models_fill;
\set VERBOSITY terse
SELECT lfg_predict('io2', 1, 1);
\set VERBOSITY default
SELECT pg_temp.sqlstate($$SELECT lfg_predict('io2', 1, 1)$$);
-- an UPDATE through the trigger checks the bytes too
UPDATE lfg.models SET model = '\xdeadbeef' WHERE name = 'io';

-- nothing stored was lost
SELECT name, version, kind, model = (SELECT m FROM good) AS same_as_trained FROM lfg.models
  WHERE name IN ('io', 'io2') ORDER BY name, version;
