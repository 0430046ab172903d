-- lfg_predict over a join, fallbacks, clipping and cache invalidation
CREATE TABLE full_data AS SELECT * FROM lfg_synthetic_ratings(400, 200, 16000, 21);
CREATE TABLE tr AS SELECT * FROM full_data WHERE hashint8(user_id * 1000 + item_id) % 5 <> 0;
CREATE TABLE te AS SELECT * FROM full_data WHERE hashint8(user_id * 1000 + item_id) % 5 = 0;
INSERT INTO lfg.models (name, model)
  SELECT 'p', lfg_fit(user_id, item_id, rating, '{"factors": 10, "epochs": 30, "seed": 3}') FROM tr;

-- accuracy on held-out ratings beats the global mean and the item means
WITH mu AS (SELECT avg(rating) AS mu FROM tr),
     im AS (SELECT item_id, avg(rating) AS m FROM tr GROUP BY item_id)
SELECT sqrt(avg((lfg_predict('p', te.user_id, te.item_id) - te.rating) ^ 2))
         < 0.97 * sqrt(avg((mu.mu - te.rating) ^ 2)) AS beats_global_mean,
       sqrt(avg((lfg_predict('p', te.user_id, te.item_id) - te.rating) ^ 2))
         < sqrt(avg((coalesce(im.m, mu.mu) - te.rating) ^ 2)) AS beats_item_mean
  FROM te CROSS JOIN mu LEFT JOIN im USING (item_id);

-- predictions are clipped to the training range
SELECT min(p) >= 1 AND max(p) <= 5 AS clipped
  FROM (SELECT lfg_predict('p', u, i) AS p FROM generate_series(1, 400, 7) u, generate_series(1, 200, 3) i) s;

-- an unknown user and item give the global mean; an unknown user gives mu + b_i
SELECT abs(lfg_predict('p', -1, -1) - (SELECT avg(rating) FROM tr)) < 1e-4 AS unknown_both_is_mean;
SELECT lfg_predict('p', -1, 5) = lfg_predict('p', -2, 5) AS unknown_user_same,
       lfg_predict('p', -1, 5) <> lfg_predict('p', -1, 6) AS item_bias_used;
-- SVD (no biases): unknown ids give the global mean
INSERT INTO lfg.models (name, model)
  SELECT 'ps', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 10}') FROM tr;
SELECT abs(lfg_predict('ps', 1, -1) - (SELECT avg(rating) FROM tr)) < 1e-4 AS svd_unknown_is_mean;

-- a newer version is used right after it is committed; versions stay addressable
CREATE TABLE before AS SELECT lfg_predict('p', 1, 2) AS v1;
INSERT INTO lfg.models (name, model)
  SELECT 'p', lfg_fit(user_id, item_id, rating, '{"factors": 10, "epochs": 30, "seed": 4}') FROM tr;
SELECT lfg_predict('p', 1, 2) <> v1 AS newest_used,
       lfg_predict('p', 1, 1, 2) = v1 AS version_1_kept,
       lfg_predict('p', 2, 1, 2) = lfg_predict('p', 1, 2) AS version_2_is_newest
  FROM before;
-- a rolled back insert changes nothing
BEGIN;
INSERT INTO lfg.models (name, model)
  SELECT 'p', lfg_fit(user_id, item_id, rating, '{"factors": 10, "seed": 5}') FROM tr;
SELECT lfg_predict('p', 1, 2) = lfg_predict('p', 3, 1, 2) AS uncommitted_seen_by_own_transaction;
ROLLBACK;
SELECT lfg_predict('p', 1, 2) = lfg_predict('p', 2, 1, 2) AS rollback_restores_version_2;
-- deleting the newest version falls back to the previous one
DELETE FROM lfg.models WHERE name = 'p' AND version = 2;
SELECT lfg_predict('p', 1, 2) = v1 AS back_to_version_1 FROM before;
SELECT lfg_predict('p', 2, 1, 2);
