-- Operational settings: the backend cache limit and the training memory limit
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE st_ratings AS SELECT * FROM lfg_synthetic_ratings(5000, 300, 60000, 3);
-- (the settings exist once the library is loaded)
SELECT name, setting, unit, context, min_val, max_val FROM pg_settings
 WHERE name IN ('lfg.cache_size_limit', 'lfg.train_memory_limit') ORDER BY name;

-- training memory: reported in the metrics, and limited
INSERT INTO lfg.models (name, model)
  SELECT 'st_small', lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 2}') FROM st_ratings WHERE user_id <= 200;
INSERT INTO lfg.models (name, model)
  SELECT 'st_big', lfg_fit(user_id, item_id, rating, '{"factors": 64, "epochs": 2}') FROM st_ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'st_mid' || s, lfg_fit(user_id, item_id, rating, format('{"factors": 64, "epochs": 1, "seed": %s}', s)::jsonb)
    FROM st_ratings, generate_series(1, 2) AS s WHERE user_id <= 2500 GROUP BY s;
SELECT name, (metrics->>'train_memory_mb')::float8 > 0 AS memory_reported,
       (metrics->>'train_memory_mb')::float8 < 50 AS plausible
  FROM lfg.models WHERE name LIKE 'st_%' ORDER BY name;
SET lfg.train_memory_limit = '1MB';
-- too many ratings to collect, to index, or to train on
SELECT pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating) FROM st_ratings$$) AS collect;
SELECT pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"factors": 2, "epochs": 1}') FROM st_ratings WHERE user_id <= 3300$$) AS index,
       pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"factors": 200, "epochs": 1}') FROM st_ratings WHERE user_id <= 600$$) AS train;
\set VERBOSITY terse
SELECT lfg_fit(user_id, item_id, rating) FROM st_ratings;
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 200, "epochs": 1}') FROM st_ratings WHERE user_id <= 600;
\set VERBOSITY default
SELECT count(*) AS small_fits FROM (SELECT lfg_fit(user_id, item_id, rating, '{"factors": 2, "epochs": 1}') FROM st_ratings WHERE user_id <= 20) s;
RESET lfg.train_memory_limit;
SET lfg.train_memory_limit = 0;

-- the backend cache: least recently used models are dropped beyond the
-- limit, and a model that alone exceeds it is refused
SELECT name, length(model) / 100000 AS hundred_kb FROM lfg.models WHERE name LIKE 'st_%' ORDER BY name;
SET lfg.cache_size_limit = '1MB';
SELECT count(*) AS small_served FROM lfg_recommend('st_small', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT count(*) AS mid1_served FROM lfg_recommend('st_mid1', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT ident FROM pg_backend_memory_contexts WHERE name = 'lfg cached model' ORDER BY ident;
-- a third model: the least recently used one (st_mid1: st_small was used since) makes room
SELECT count(*) AS small_served FROM lfg_recommend('st_small', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT count(*) AS mid2_served FROM lfg_recommend('st_mid2', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT ident FROM pg_backend_memory_contexts WHERE name = 'lfg cached model' ORDER BY ident;
SELECT pg_temp.sqlstate($$SELECT count(*) FROM lfg_recommend('st_big', '{"1": 5}', NULL::float8, NULL, NULL, 3)$$) AS big_refused;
\set VERBOSITY terse
SELECT count(*) FROM lfg_recommend('st_big', '{"1": 5}', NULL::float8, NULL, NULL, 3);
\set VERBOSITY default
SELECT count(*) AS small_still_served FROM lfg_recommend('st_small', '{"1": 5}', NULL::float8, NULL, NULL, 3);
RESET lfg.cache_size_limit;
SELECT count(*) AS big_served FROM lfg_recommend('st_big', '{"1": 5}', NULL::float8, NULL, NULL, 3);
DELETE FROM lfg.models WHERE name LIKE 'st_%';

-- lfg_progress keeps its figures in shared memory: without preloading it says so
SELECT * FROM lfg_progress();
