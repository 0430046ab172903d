-- Training with lfg_fit on small seeded synthetic data
CREATE TABLE ratings AS
  SELECT user_id, item_id, rating FROM lfg_synthetic_ratings(200, 120, 6000, 7);
SELECT count(*), count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS items,
       min(rating), max(rating) FROM ratings;

-- the synthetic generator is deterministic
SELECT (SELECT md5(string_agg(concat_ws(',', user_id, item_id, rating), ';'))
          FROM lfg_synthetic_ratings(50, 40, 500, 3)) =
       (SELECT md5(string_agg(concat_ws(',', user_id, item_id, rating), ';'))
          FROM lfg_synthetic_ratings(50, 40, 500, 3)) AS synthetic_deterministic;

-- INSERT (name, model) fills kind, options, metrics and numbers versions
INSERT INTO lfg.models (name, model)
  SELECT 'bias', lfg_fit(user_id, item_id, rating, '{"factors": 20, "epochs": 25, "seed": 1}')
  FROM ratings;
SELECT name, version, kind, options FROM lfg.models;
SELECT metrics->'rows' AS rows, metrics->'rows_skipped' AS skipped,
       metrics->'users' AS users, metrics->'items' AS items,
       (metrics->>'train_rmse')::float8 < 0.85 AS train_rmse_ok,
       (metrics->>'train_seconds')::float8 >= 0 AS timed
  FROM lfg.models;
SELECT created_at <= now() AS created_at_set FROM lfg.models;

-- the default is BiasSVD with Surprise's hyperparameters
INSERT INTO lfg.models (name, model) SELECT 'bias', lfg_fit(user_id, item_id, rating) FROM ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'plain', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 10}') FROM ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'bias', lfg_fit(user_id, item_id, rating, '{"factors": 5, "epochs": 3}') FROM ratings;
SELECT name, version, kind, options->>'factors' AS factors, options->>'epochs' AS epochs,
       options->>'lr' AS lr, options->>'reg' AS reg, options->>'init_std' AS init_std
  FROM lfg.models ORDER BY name, version;
SELECT i.kind, i.factors, i.n_users, i.n_items, i.bytes = length(model) AS bytes,
       i.options = m.options AS options, i.metrics = m.metrics - 'train_seconds' - 'train_memory_mb' - 'seconds_per_epoch' - 'epoch_seconds' AS metrics
  FROM lfg.models m, lfg_model_info(model) i WHERE name = 'plain';

-- same data and seed: byte-identical models; another seed: another model
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8, "seed": 5}') =
       lfg_fit(user_id, item_id, rating, '{"factors": 8, "seed": 5}') AS same_seed_same_bytes,
       lfg_fit(user_id, item_id, rating, '{"factors": 8, "seed": 5}') =
       lfg_fit(user_id, item_id, rating, '{"factors": 8, "seed": 6}') AS other_seed_same_bytes
  FROM ratings;

-- the model does not depend on the order rows arrive in
SELECT (SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8}' ORDER BY user_id, item_id) FROM ratings) =
       (SELECT lfg_fit(user_id, item_id, rating, '{"factors": 8}' ORDER BY md5(item_id::text || user_id::text) DESC) FROM ratings)
  AS order_independent;

-- ids and ratings of any integer or numeric type work without casts
CREATE TABLE typed AS
  SELECT user_id::int AS u4, item_id::int AS i4, user_id::smallint AS u2, item_id::smallint AS i2,
         rating::int AS r4, rating::real AS r_real, rating::float8 AS r8, rating::numeric AS rnum
  FROM ratings;
SELECT count(DISTINCT m) = 1 AS all_types_same_model FROM (
  SELECT lfg_fit(u4, i4, r4, '{"factors": 4, "epochs": 2}') AS m FROM typed
  UNION ALL SELECT lfg_fit(u2, i2, r_real, '{"factors": 4, "epochs": 2}') FROM typed
  UNION ALL SELECT lfg_fit(u4::bigint, i2, r8, '{"factors": 4, "epochs": 2}') FROM typed
  UNION ALL SELECT lfg_fit(u2, i4, rnum, '{"factors": 4, "epochs": 2}') FROM typed) s;

-- sparse, negative and large ids
SELECT (lfg_model_info(lfg_fit(user_id * -1000000007, item_id * 9000000000000, rating,
                                '{"factors": 4, "epochs": 2}'))).n_users
  FROM ratings;

-- ids that span a small range (marked in a table) and the same ids spread
-- far apart (sorted) are numbered alike: the same factors, so the same
-- training error, to the bit
SELECT (lfg_model_info(a)).metrics->'train_rmse' = (lfg_model_info(b)).metrics->'train_rmse' AS same_fit,
       (lfg_model_info(a)).n_users = (lfg_model_info(b)).n_users AS same_users
  FROM (SELECT lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}') AS a,
               lfg_fit(user_id * 1000003 - 5, item_id * 7000000001 - 9000000000000000000, rating, '{"factors": 4, "epochs": 2}') AS b
          FROM ratings) f;

-- rows with a NULL id or rating are skipped and counted
CREATE TABLE with_nulls AS
  SELECT user_id, item_id, rating FROM ratings
  UNION ALL VALUES (NULL::bigint, 1::bigint, 3::real), (1, NULL, 3), (1, 2, NULL);
INSERT INTO lfg.models (name, model)
  SELECT 'nulls', lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}') FROM with_nulls;
SELECT metrics->'rows' AS rows, metrics->'rows_skipped' AS skipped FROM lfg.models WHERE name = 'nulls';

-- an explicit version (as pg_restore gives) is kept
INSERT INTO lfg.models (name, version, model)
  SELECT 'restored', 7, lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}') FROM ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'restored', lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}') FROM ratings;
SELECT name, version FROM lfg.models WHERE name = 'restored' ORDER BY version;

-- models are stored uncompressed and out of line
SELECT attstorage FROM pg_attribute WHERE attrelid = 'lfg.models'::regclass AND attname = 'model';
SELECT pg_column_size(model) >= length(model) AS not_compressed FROM lfg.models WHERE name = 'bias' AND version = 2;
-- and pg_dump keeps them
SELECT array(SELECT c::regclass::text FROM unnest(extconfig) AS c ORDER BY 1) AS dumped FROM pg_extension WHERE extname = 'lfg';

-- "parallel" threads: the same bytes for any number (the grid of blocks does
-- not depend on it), checked range, and a training curve in the metrics
CREATE TABLE wide AS
  SELECT * FROM lfg_synthetic_ratings(3000, 1500, 60000, 5);
SELECT md5(lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 3, "parallel": 1}')) =
       md5(lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 3, "parallel": 2}')) AS p1_p2_same,
       md5(lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 3, "parallel": 1}')) <>
       md5(lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 8, "epochs": 3, "parallel": 3}')) AS biassvd_svd_differ
  FROM wide;
SELECT md5(lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 8, "epochs": 3, "parallel": 1}')) =
       md5(lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 8, "epochs": 3, "parallel": 4}')) AS svd_p1_p4_same
  FROM wide;
SELECT lfg_fit(user_id, item_id, rating, '{"parallel": 0}') FROM ratings;
SELECT lfg_fit(user_id, item_id, rating, '{"parallel": 65}') FROM ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'curve', lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 4, "parallel": 2}') FROM wide;
SELECT jsonb_array_length(metrics->'epoch_train_rmse') AS rmse_epochs,
       jsonb_array_length(metrics->'epoch_seconds') AS timed_epochs,
       (metrics->'epoch_train_rmse'->>3)::float8 < (metrics->'epoch_train_rmse'->>0)::float8 AS rmse_falls,
       NOT (options ? 'parallel') AS parallel_not_stored
  FROM lfg.models WHERE name = 'curve';
DELETE FROM lfg.models WHERE name = 'curve';

-- svd and biassvd compact the state in place to train: a state finalized
-- twice (two identical calls share it) or aggregated further after a final
-- call (a running window) gives the same models as a fresh one
SELECT md5(lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}')) =
       md5(lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}')) AS shared_state_same,
       md5(lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}')) =
       (SELECT md5(lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}')) FROM ratings) AS fresh_same
  FROM ratings;
CREATE TABLE first300 AS
  SELECT *, row_number() OVER (ORDER BY user_id, item_id) AS n
    FROM (SELECT * FROM ratings ORDER BY user_id, item_id LIMIT 300) r;
WITH w AS (
  SELECT n, md5(lfg_fit(user_id, item_id, rating, '{"factors": 2, "epochs": 1}')
                OVER (ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS m
    FROM first300)
SELECT count(*) AS windows, count(DISTINCT m) AS models,
       (SELECT m FROM w ORDER BY n DESC LIMIT 1) =
       (SELECT md5(lfg_fit(user_id, item_id, rating, '{"factors": 2, "epochs": 1}')) FROM first300) AS last_window_same
  FROM w;
