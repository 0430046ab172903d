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
