-- The backend model cache follows commits made by other backends
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TABLE cache_data AS SELECT * FROM lfg_synthetic_ratings(100, 60, 2000, 5);
INSERT INTO lfg.models (name, model)
  SELECT 'shared', lfg_fit(user_id, item_id, rating, '{"factors": 4, "seed": 1}') FROM cache_data;
-- this backend loads version 1 into its cache
CREATE TABLE seen AS SELECT lfg_predict('shared', 1, 1) AS v1;
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));
-- another backend trains and commits version 2 while this one holds version 1
SELECT dblink_exec('other', $$INSERT INTO lfg.models (name, model)
  SELECT 'shared', lfg_fit(user_id, item_id, rating, '{"factors": 4, "seed": 2}') FROM cache_data$$);
-- the next transaction here uses version 2
SELECT lfg_predict('shared', 1, 1) <> v1 AS sees_new_version,
       lfg_predict('shared', 1, 1) = lfg_predict('shared', 2, 1, 1) AS is_version_2
  FROM seen;
-- and an uncommitted version in the other backend is not seen
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO lfg.models (name, model)
  SELECT 'shared', lfg_fit(user_id, item_id, rating, '{"factors": 4, "seed": 3}') FROM cache_data$$);
SELECT lfg_predict('shared', 1, 1) = lfg_predict('shared', 2, 1, 1) AS still_version_2;
SELECT dblink_exec('other', 'ROLLBACK');
-- a delete in the other backend is seen too
SELECT dblink_exec('other', $$DELETE FROM lfg.models WHERE name = 'shared' AND version = 2$$);
SELECT lfg_predict('shared', 1, 1) = v1 AS back_to_version_1 FROM seen;
SELECT dblink_disconnect('other');

-- A failure during a model's first serving call leaves nothing behind: with
-- lfg.cache_size_limit between the decoded model and the model with its
-- serving buffers, every first lfg_recommend builds the buffers, is refused
-- (53400) and drops the entry; the backend's memory stays flat over repeated
-- failures, and serving works once the limit allows it.
CREATE TABLE big_data AS SELECT * FROM lfg_synthetic_ratings(2000, 20000, 100000, 5);
INSERT INTO lfg.models (name, model)
  SELECT 'big', lfg_fit(user_id, item_id, rating, '{"factors": 64, "epochs": 1}') FROM big_data;
SELECT lfg_predict('big', 1, 1) IS NOT NULL AS model_loaded;
SELECT (total_bytes + 1048575) / 1048576 AS model_mb
  FROM pg_backend_memory_contexts WHERE name = 'lfg cached model' AND ident = 'big' \gset
SELECT set_config('lfg.cache_size_limit', :'model_mb' || 'MB', false) IS NOT NULL AS limit_set;
CREATE FUNCTION pg_temp.lfg_memory() RETURNS bigint LANGUAGE sql AS
$$SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts
   WHERE name IN ('TopMemoryContext', 'CacheMemoryContext') OR name LIKE 'lfg%'$$;
CREATE FUNCTION pg_temp.fail_first_serving(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE refused int := 0;
BEGIN
  FOR i IN 1 .. n LOOP
    BEGIN
      PERFORM * FROM lfg_recommend('big', '{"1": 5}', NULL::float8, NULL, NULL, 5);
    EXCEPTION WHEN configuration_limit_exceeded THEN
      refused := refused + 1;
    END;
  END LOOP;
  RETURN refused;
END $$;
SELECT pg_temp.fail_first_serving(10) AS refused_warmup;
SELECT pg_temp.lfg_memory() AS before \gset
SELECT pg_temp.fail_first_serving(30) AS refused;
SELECT pg_temp.lfg_memory() - :before < 8192 AS memory_flat,
       count(*) AS cached_models FROM pg_backend_memory_contexts WHERE name = 'lfg cached model';
RESET lfg.cache_size_limit;
SELECT count(*) AS served FROM lfg_recommend('big', '{"1": 5}', NULL::float8, NULL, NULL, 5);
DELETE FROM lfg.models WHERE name = 'big';
