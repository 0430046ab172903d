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
-- LFG's threads ("parallel"): the same bytes for 1 and 2, both presets
-- (new_user with its ranking head); a batch of 128 users is cut into rows
SELECT md5(lfg_fit(user_id, item_id, rating, age, gender, job,
         '{"hidden": [48, 40], "factors": 8, "epochs": 3, "parallel": 1}')) =
       md5(lfg_fit(user_id, item_id, rating, age, gender, job,
         '{"hidden": [48, 40], "factors": 8, "epochs": 3, "parallel": 2}')) AS lfg_p1_p2_same,
       md5(lfg_fit(user_id, item_id, rating, age, gender, job,
         '{"preset": "new_user", "hidden": [48, 40], "factors": 8, "epochs": 3, "rank_epochs": 2, "parallel": 1}')) =
       md5(lfg_fit(user_id, item_id, rating, age, gender, job,
         '{"preset": "new_user", "hidden": [48, 40], "factors": 8, "epochs": 3, "rank_epochs": 2, "parallel": 2}')) AS new_user_p1_p2_same
  FROM par_demo WHERE age <> 99;
-- a cancel during an LFG fit on 2 threads takes effect within 1 s (here a
-- statement_timeout of 300 ms, caught to time it)
SET statement_timeout = '300ms';
DO $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM lfg_fit(user_id, item_id, rating, age, gender, job,
                  '{"epochs": 10000, "patience": 0, "parallel": 2}') FROM par_demo WHERE age <> 99;
  RAISE NOTICE 'not cancelled';
EXCEPTION WHEN query_canceled THEN
  RAISE NOTICE 'stopped within 1 s of the timeout: %',
    clock_timestamp() - t0 < interval '300 ms' + interval '1 s';
END $$;
RESET statement_timeout;
