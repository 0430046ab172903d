-- LFG models: training with demographics, options, edge cases, cancel
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE lr AS SELECT * FROM lfg_synthetic_ratings(300, 120, 12000, 31);
CREATE TABLE lu AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age,
         CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer', 'student'])[1 + u % 4] AS job,
         u % 4 AS job_code
  FROM generate_series(1, 300) u;
CREATE TABLE lr_train AS SELECT * FROM lr WHERE hashint8(user_id * 1000 + item_id) % 5 <> 0;
CREATE TABLE lr_test AS SELECT * FROM lr WHERE hashint8(user_id * 1000 + item_id) % 5 = 0;

-- the 6-argument form trains kind lfg
INSERT INTO lfg.models (name, model)
  SELECT 'gen', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                        '{"hidden": [32, 32], "factors": 8, "epochs": 40, "lr": 0.003, "seed": 1}')
  FROM lr_train r JOIN lu u USING (user_id);
SELECT name, version, kind, options->>'preset' AS preset, options->'hidden' AS hidden,
       options->>'batchnorm' AS batchnorm, options->>'input' AS input
  FROM lfg.models WHERE name = 'gen';
SELECT metrics->'rows' AS rows, metrics->'users' AS users, metrics->'genders' AS genders,
       metrics->'jobs' AS jobs, (metrics->>'epochs_run')::int >= (metrics->>'best_epoch')::int AS early_stopping,
       (metrics->>'val_rmse')::float8 < 1 AS val_ok, metrics ? 'seconds_per_epoch' AS timed,
       (metrics->>'gflop_per_epoch')::float8 > 0 AS flops
  FROM lfg.models WHERE name = 'gen';
SELECT (lfg_model_info(model)).kind, (lfg_model_info(model)).factors FROM lfg.models WHERE name = 'gen';

-- known users are served by lfg_predict, better than the global mean
WITH mu AS (SELECT avg(rating) AS mu FROM lr_train)
SELECT sqrt(avg((lfg_predict('gen', t.user_id, t.item_id) - t.rating) ^ 2))
         < 0.95 * sqrt(avg((mu.mu - t.rating) ^ 2)) AS beats_global_mean,
       min(lfg_predict('gen', t.user_id, t.item_id)) >= 1 AND
       max(lfg_predict('gen', t.user_id, t.item_id)) <= 5 AS clipped
  FROM lr_test t, mu;

-- deterministic under a seed, and independent of row order
SELECT (SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                       '{"hidden": [16, 16], "factors": 4, "epochs": 5, "seed": 3}' ORDER BY r.user_id, r.item_id)
          FROM lr_train r JOIN lu u USING (user_id)) =
       (SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                       '{"hidden": [16, 16], "factors": 4, "epochs": 5, "seed": 3}' ORDER BY md5(r.item_id::text || r.user_id::text))
          FROM lr_train r JOIN lu u USING (user_id)) AS deterministic;

-- the new-user preset and the ablation switches
INSERT INTO lfg.models (name, model)
  SELECT 'gen_new', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                            '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 20}')
  FROM lr_train r JOIN lu u USING (user_id);
SELECT options->>'preset' AS preset, options->>'batchnorm' AS batchnorm, options->>'train_items' AS train_items,
       options->>'input' AS input, options->>'episodes' AS episodes, options->>'revealed_weight' AS revealed_weight
  FROM lfg.models WHERE name = 'gen_new';
SELECT count(*) AS trained FROM (
  SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, o::jsonb) AS m
  FROM lr_train r JOIN lu u USING (user_id),
       (VALUES ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "batchnorm": false}'),
               ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "aux": false}'),
               ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "init": "random"}'),
               ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "mask_prob": 0}'),
               ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "episodes": true, "input": "centered"}'),
               ('{"hidden": [8, 8], "factors": 4, "epochs": 2, "train_items": false, "val_fraction": 0}')) AS opts(o)
  GROUP BY o) s WHERE (lfg_model_info(m)).kind = 'lfg';
-- kind lfg without demographics, and MF kinds with them
SELECT (lfg_model_info(lfg_fit(user_id, item_id, rating, '{"kind": "lfg", "hidden": [8, 8], "factors": 4, "epochs": 2}'))).kind
  FROM lr_train;
SELECT (lfg_model_info(lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, '{"kind": "biassvd", "factors": 4}'))).kind
  FROM lr_train r JOIN lu u USING (user_id);

-- demographics: NULLs are allowed, integer codes go through a cast
SELECT (lfg_model_info(lfg_fit(r.user_id, r.item_id, r.rating,
          CASE WHEN u.user_id % 5 = 0 THEN NULL ELSE u.age END,
          CASE WHEN u.user_id % 7 = 0 THEN NULL ELSE u.gender END,
          u.job_code::text, '{"hidden": [8, 8], "factors": 4, "epochs": 2}'))).metrics->'jobs' AS jobs
  FROM lr_train r JOIN lu u USING (user_id);
-- one user with two different demographics
SELECT lfg_fit(u, i, r, a, g, j) FROM (VALUES (1, 1, 4, 30, 'M', 'doctor'), (1, 2, 3, 31, 'M', 'doctor')) v(u, i, r, a, g, j);
SELECT lfg_fit(u, i, r, a, g, j) FROM (VALUES (7, 1, 4, 30, 'M', 'doctor'), (7, 2, 3, 30, NULL, 'doctor')) v(u, i, r, a, g, j);
SELECT lfg_fit(u, i, r, a, g, j) FROM (VALUES (7, 1, 4, 'NaN'::float8, 'M', 'doctor')) v(u, i, r, a, g, j);
SELECT pg_temp.sqlstate($$SELECT lfg_fit(u, i, r, a, g, j) FROM (VALUES (1, 1, 4, 30, 'M', 'x'), (1, 2, 3, 31, 'M', 'x')) v(u, i, r, a, g, j)$$);

-- option validation for kind lfg
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"reg": 0.1}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"hidden": 256}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"hidden": [256]}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"hidden": [256, 0]}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"preset": "fast"}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"mask_prob": 1}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"dropout": -0.1}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"val_fraction": 0.9}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"init": "zeros"}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"input": "onehot"}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"batch_size": 0}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"base_factors": 0}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"base_factors": 1025}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"base_factors": 12.5}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"batchnorm": 1}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"weight_decay": "strong"}') FROM lr_train;
SELECT lfg_fit(user_id, item_id, rating, 40, 'M', 'x', '{"dropout": "strong"}') FROM lr_train;
-- "auto" weight decay and dropout are stored as the values used: 240 / training
-- ratings, at most 0.012, and 0.5 + 0.2 log2(40,000 / training ratings) within
-- 0.5 .. 0.7 (this tiny set: both at their most)
SELECT o->'weight_decay' AS auto_weight_decay, o->'dropout' AS auto_dropout
  FROM (SELECT (lfg_model_info(lfg_fit(user_id, item_id, rating, 40, 'M', 'x',
          '{"weight_decay": "auto", "dropout": "auto", "hidden": [8, 8], "factors": 4, "epochs": 1}'))).options AS o
        FROM lr_train) m;
SELECT lfg_fit(user_id, item_id, rating, '{"preset": "paper"}') FROM lr_train;

-- a cancel (here statement_timeout) stops training and stores nothing
SET statement_timeout = '300ms';
INSERT INTO lfg.models (name, model)
  SELECT 'gen', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, '{"epochs": 10000, "patience": 0}')
  FROM lr_train r JOIN lu u USING (user_id);
RESET statement_timeout;
SELECT name, version FROM lfg.models WHERE name = 'gen';
