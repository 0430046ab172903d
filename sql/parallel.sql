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
RESET ALL;
