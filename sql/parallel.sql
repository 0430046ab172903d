-- lfg_fit under a forced parallel plan gives the same model as a serial plan
CREATE TABLE par AS SELECT * FROM lfg_synthetic_ratings(300, 150, 9000, 11);
ALTER TABLE par SET (parallel_workers = 2);
ANALYZE par;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
  SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 5}') FROM par;
CREATE TABLE par_model AS
  SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 5}') AS m FROM par;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF)
  SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 5}') FROM par;
SELECT m = (SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 5}') FROM par)
  AS parallel_equals_serial FROM par_model;
SELECT (lfg_model_info(m)).metrics->'rows' AS rows FROM par_model;
-- with demographics (kind lfg): the per-user map and vocabularies are combined too
CREATE TABLE par_demo AS
  SELECT p.*, 20 + p.user_id % 40 AS age, CASE WHEN p.user_id % 2 = 0 THEN 'F' ELSE 'M' END AS gender,
         'job' || (p.user_id % 5) AS job
  FROM par p;
ALTER TABLE par_demo SET (parallel_workers = 2);
ANALYZE par_demo;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
  SELECT lfg_fit(user_id, item_id, rating, age, gender, job, '{"hidden": [8, 8], "factors": 4, "epochs": 3}') FROM par_demo;
CREATE TABLE par_lfg AS
  SELECT lfg_fit(user_id, item_id, rating, age, gender, job, '{"hidden": [8, 8], "factors": 4, "epochs": 3}') AS m FROM par_demo;
SET max_parallel_workers_per_gather = 0;
SELECT m = (SELECT lfg_fit(user_id, item_id, rating, age, gender, job, '{"hidden": [8, 8], "factors": 4, "epochs": 3}') FROM par_demo)
  AS lfg_parallel_equals_serial,
  (lfg_model_info(m)).metrics->'jobs' AS jobs FROM par_lfg;
-- inconsistent demographics split across workers are still caught
UPDATE par_demo SET age = 99 WHERE ctid = (SELECT max(ctid) FROM par_demo);
SET max_parallel_workers_per_gather = 2;
-- (terse: which row a worker sees first varies)
\set VERBOSITY terse
SELECT lfg_fit(user_id, item_id, rating, age, gender, job, '{"hidden": [8, 8], "factors": 4, "epochs": 3}') IS NOT NULL
  FROM par_demo;
\set VERBOSITY default
RESET ALL;
