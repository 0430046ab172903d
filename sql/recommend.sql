-- Serving new users: lfg_recommend, lfg_predict over candidates, lfg_user_factors
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE rr AS SELECT * FROM lfg_synthetic_ratings(300, 80, 9000, 41);
CREATE TABLE ru AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer'])[1 + u % 3] AS job
  FROM generate_series(1, 300) u;
-- users 1..250 train the models; 251..300 are new users
INSERT INTO lfg.models (name, model)
  SELECT 'rec_bias', lfg_fit(user_id, item_id, rating, '{"factors": 8}') FROM rr WHERE user_id <= 250;
INSERT INTO lfg.models (name, model)
  SELECT 'rec_svd', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 8}') FROM rr WHERE user_id <= 250;
INSERT INTO lfg.models (name, model)
  SELECT 'rec_lfg', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                            '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "popularity_prior": 0, "rank_weight": 0, "base_factors": 8}')
  FROM rr r JOIN ru u USING (user_id) WHERE r.user_id <= 250;
CREATE TABLE new_user AS SELECT jsonb_object_agg(item_id, rating) AS ratings FROM rr WHERE user_id = 260;
SELECT count(*) AS rated FROM rr WHERE user_id = 260;

-- k rows, best first, ties by item id, rated items excluded, scores clipped
SELECT m, count(*) AS n, bool_and(score BETWEEN 1 AND 5) AS clipped,
       bool_and(NOT (n.ratings ? item_id::text)) AS unrated_only
  FROM new_user n, unnest(ARRAY['rec_bias', 'rec_svd', 'rec_lfg']) m,
       LATERAL lfg_recommend(m, n.ratings, 40, 'F', 'doctor', 7) r
  GROUP BY m ORDER BY m;
SELECT bool_and(ordered) AS best_first FROM (
  SELECT score > lead(score) OVER w OR (score = lead(score) OVER w AND item_id < lead(item_id) OVER w)
         OR lead(score) OVER w IS NULL AS ordered
  FROM new_user n, lfg_recommend('rec_lfg', n.ratings, 40, 'F', 'doctor', 80)
  WINDOW w AS (ORDER BY score DESC, item_id)) s;
-- the array form gives the same answer
SELECT (SELECT array_agg(item_id) FROM new_user n, lfg_recommend('rec_bias', n.ratings, NULL::float8, NULL, NULL, 10)) =
       (SELECT array_agg(item_id) FROM lfg_recommend_arrays('rec_bias',
          (SELECT array_agg(item_id) FROM rr WHERE user_id = 260),
          (SELECT array_agg(rating::float8) FROM rr WHERE user_id = 260), NULL, NULL, NULL, 10)) AS arrays_same;
-- k above the catalogue returns every unrated item
SELECT count(*) = 80 - (SELECT count(*) FROM rr WHERE user_id = 260) AS whole_catalogue
  FROM new_user n, lfg_recommend('rec_bias', n.ratings, NULL::float8, NULL, NULL, 100000);
-- lfg_predict over a candidate list agrees with the recommendation scores
SELECT bool_and(abs(p.s - r.score) < 1e-6) AS predict_matches
  FROM new_user n, lfg_recommend('rec_lfg', n.ratings, 40, 'F', 'doctor', 5) r,
       LATERAL (SELECT (lfg_predict('rec_lfg', n.ratings, 40, 'F', 'doctor', ARRAY[r.item_id]))[1] AS s) p;
-- the top k is exactly that of scoring every unrated item with lfg_predict
-- and sorting (the scan's approximate scores never change the answer)
SELECT m, r.items = p.items AS same_items, r.scores = p.scores AS same_scores
  FROM new_user n, unnest(ARRAY['rec_bias', 'rec_svd', 'rec_lfg']) m,
       LATERAL (SELECT array_agg(item_id ORDER BY score DESC, item_id) AS items,
                       array_agg(score ORDER BY score DESC, item_id) AS scores
                  FROM lfg_recommend(m, n.ratings, 40, 'F', 'doctor', 10)) r,
       LATERAL (SELECT array_agg(g::bigint) AS ids FROM generate_series(1, 80) g
                 WHERE NOT n.ratings ? g::text) c,
       LATERAL (SELECT array_agg(i ORDER BY s DESC, i) AS items, array_agg(s ORDER BY s DESC, i) AS scores
                  FROM (SELECT i, s FROM unnest(c.ids, lfg_predict(m, n.ratings, 40, 'F', 'doctor', c.ids)) AS t(i, s)
                        ORDER BY s DESC, i LIMIT 10) q) p
  ORDER BY m;
SELECT array_length(lfg_predict('rec_bias', '{"1": 4}', NULL::float8, NULL, NULL, ARRAY[1, 2, NULL, -5]::bigint[]), 1) AS n,
       (lfg_predict('rec_bias', '{"1": 4}', NULL::float8, NULL, NULL, ARRAY[1, 2, NULL, -5]::bigint[]))[3] IS NULL AS null_kept;
-- user factors: k values then the bias; SVD has no bias
SELECT array_length(lfg_user_factors('rec_lfg', n.ratings, 40, 'F', 'doctor'), 1) AS lfg_len,
       array_length(lfg_user_factors('rec_bias', n.ratings, NULL::float8, NULL, NULL), 1) AS bias_len,
       (lfg_user_factors('rec_svd', n.ratings, NULL::float8, NULL, NULL))[9] AS svd_bias
  FROM new_user n;

-- fold-in helps: a new user's held-out ratings are predicted better than by mu + b_i
WITH revealed AS (SELECT user_id, jsonb_object_agg(item_id, rating) AS r FROM rr
                   WHERE user_id > 250 AND hashint8(user_id * 1000 + item_id) % 2 = 0 GROUP BY user_id),
     hidden AS (SELECT * FROM rr WHERE user_id > 250 AND hashint8(user_id * 1000 + item_id) % 2 <> 0)
SELECT sqrt(avg((p.fold - h.rating) ^ 2)) < sqrt(avg((p.base - h.rating) ^ 2)) AS foldin_beats_item_bias,
       sqrt(avg((p.gen - h.rating) ^ 2)) < sqrt(avg((p.base - h.rating) ^ 2)) AS lfg_beats_item_bias
  FROM hidden h JOIN revealed v USING (user_id) JOIN ru u USING (user_id),
       LATERAL (SELECT (lfg_predict('rec_bias', v.r, NULL::float8, NULL, NULL, ARRAY[h.item_id]))[1] AS fold,
                       (lfg_predict('rec_bias', '{}', NULL::float8, NULL, NULL, ARRAY[h.item_id]))[1] AS base,
                       (lfg_predict('rec_lfg', v.r, u.age, u.gender, u.job, ARRAY[h.item_id]))[1] AS gen) p;

-- lfg.refine off gives the generator alone; it differs from the refined vector
SELECT (SELECT lfg_user_factors('rec_lfg', ratings, 40, 'F', 'doctor') FROM new_user) AS refined \gset
\set VERBOSITY terse
SET lfg.refine = off;
SELECT lfg_user_factors('rec_lfg', ratings, 40, 'F', 'doctor') <> :'refined'::real[] AS generator_alone_differs
  FROM new_user;
RESET lfg.refine;
\set VERBOSITY default
-- empty ratings: the demographics-only (LFG) or popularity (mu + b_i) answer
SELECT count(*) AS n FROM lfg_recommend('rec_lfg', '{}', 40, 'F', 'doctor', 5);
SELECT lfg_user_factors('rec_lfg', '{}', 20, 'M', 'artist') <>
       lfg_user_factors('rec_lfg', '{}', 60, 'F', 'doctor') AS demographics_matter;
SELECT count(*) AS n FROM lfg_recommend('rec_bias', NULL::jsonb, NULL::float8, NULL, NULL);
-- a user who rated more items than the serving buffers held (they grow), then a small one
SELECT count(*) AS unrated_left FROM lfg_recommend('rec_lfg',
  (SELECT jsonb_object_agg(i, 1 + i % 5) FROM generate_series(1, 75) i), 40, 'F', 'doctor', 10);
SELECT count(*) AS n FROM lfg_recommend('rec_lfg', '{"1": 4}', 40, 'F', 'doctor', 3);
-- unknown items, unseen categories and NULL demographics are accepted
SELECT count(*) AS n FROM lfg_recommend('rec_lfg', '{"99999": 5, "1": 4}', NULL::float8, 'X', 'astronaut', 3);

-- the default model: lfg.model, or the only model name
SELECT * FROM lfg_recommend(NULL, '{"1": 5}', NULL, NULL, NULL, 3);
SET lfg.model = 'rec_bias';
SELECT count(*) AS n FROM lfg_recommend(NULL, '{"1": 5}', NULL, NULL, NULL, 3);
SELECT count(*) AS n FROM lfg_recommend_arrays(NULL, ARRAY[1]::bigint[], ARRAY[5]::float8[], NULL, NULL, NULL, 3);
SET lfg.model = 'no such model';
SELECT * FROM lfg_recommend(NULL, '{"1": 5}', NULL, NULL, NULL, 3);
RESET lfg.model;

-- bad input (the named form needs a typed age when the age is NULL or quoted:
-- an untyped NULL there also fits the default-model form)
SET lfg.foldin_reg = 0;
SELECT * FROM lfg_recommend('rec_bias', '[1, 2]', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '"5"', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"fifty": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"5.5": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{" 50": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"50 ": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"-": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"9223372036854775808": 5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"-9223372036854775809": 5}', NULL::float8, NULL, NULL);
-- a sign is allowed, and the int64 extremes are ids (unknown here: ignored);
-- item 50 is known (its rating changes the answer)
SELECT (SELECT array_agg(item_id) FROM lfg_recommend('rec_bias',
          '{"+50": 5, "-9223372036854775808": 4, "9223372036854775807": 3}', NULL::float8, NULL, NULL)) =
       (SELECT array_agg(item_id) FROM lfg_recommend('rec_bias', '{"50": 5}', NULL::float8, NULL, NULL))
       AS same_as_50_alone,
       (SELECT array_agg(item_id) FROM lfg_recommend('rec_bias', '{"50": 5}', NULL::float8, NULL, NULL)) <>
       (SELECT array_agg(item_id) FROM lfg_recommend('rec_bias', '{}', NULL::float8, NULL, NULL))
       AS differs_from_none;
SELECT * FROM lfg_recommend('rec_bias', '{"50": "five"}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"50": null}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"50": 9}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"50": 0.5}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"50": 3000000000}', NULL::float8, NULL, NULL);
-- one rating written four ways (integral ratings are read as integers): one answer
SELECT count(DISTINCT a) AS answers
  FROM unnest(ARRAY['{"50": 4}', '{"50": 4.0}', '{"50": 40e-1}', '{"50": 0.4e1}']) AS r,
       LATERAL (SELECT array_agg(item_id || ':' || score) AS a
                  FROM lfg_recommend('rec_bias', r::jsonb, NULL::float8, NULL, NULL)) s;
SELECT * FROM lfg_recommend('rec_bias', '{"50": 5, "050": 4}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, 2]::bigint[], ARRAY[5]::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, NULL]::bigint[], ARRAY[5, 4]::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, 2]::bigint[], ARRAY[5, NULL]::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, 1]::bigint[], ARRAY[5, 4]::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1]::bigint[], ARRAY['NaN']::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[[1, 2]]::bigint[], ARRAY[[5, 4]]::float8[], NULL, NULL, NULL);
SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL::float8, NULL, NULL, 0);
SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL::float8, NULL, NULL, -3);
SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL::float8, NULL, NULL, 100000000);
SELECT * FROM lfg_recommend('rec_lfg', '{"1": 5}', 'NaN'::float8, 'F', 'doctor');
-- ages training would refuse (beyond float4 too): refused, not one arbitrary vector
SELECT * FROM lfg_recommend('rec_lfg', '{"1": 5}', 1e39::float8, 'F', 'doctor');
SELECT * FROM lfg_recommend('rec_lfg', '{"1": 5}', -1e308::float8, 'F', 'doctor');
SELECT * FROM lfg_recommend('rec_lfg', '{"1": 5}', 1000001::float8, 'F', 'doctor');
SELECT count(*) AS served_at_limit FROM lfg_recommend('rec_lfg', '{"1": 5}', -1000000::float8, 'F', 'doctor');
-- a rating just off the scale is printed as given, not rounded into the range
SELECT * FROM lfg_recommend('rec_bias', '{"50": 5.0000001}', NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('nope', '{"1": 5}', NULL::float8, NULL, NULL);
SELECT count(*) AS in_select_list FROM (SELECT lfg_recommend('rec_bias', '{"1": 5}', NULL::float8, NULL, NULL)) s;
-- untyped literals resolve too (0.1.0 reported "is not unique" here)
SELECT count(*) AS untyped_literals FROM lfg_recommend('rec_bias', '{"1": 5}', NULL, NULL, NULL);
SELECT pg_temp.sqlstate($$SELECT * FROM lfg_recommend('rec_bias', '{"50": 9}', NULL::float8, NULL, NULL)$$) AS off_scale,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, NULL]::bigint[], ARRAY[5, 4]::float8[], NULL, NULL, NULL)$$) AS null_element,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_arrays('rec_bias', ARRAY[1, 2]::bigint[], ARRAY[5]::float8[], NULL, NULL, NULL)$$) AS lengths,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL::float8, NULL, NULL, 100000000)$$) AS big_k,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend('nope', '{"1": 5}', NULL::float8, NULL, NULL)$$) AS unknown_model;

-- drivers that send untyped bind parameters (node-pg, pgx, JDBC): every
-- call shape resolves without casts (one form per number of arguments)
SET lfg.model = 'rec_bias';
PREPARE rec4 AS SELECT count(*) FROM lfg_recommend($1, $2, $3, $4);
PREPARE rec5 AS SELECT count(*) FROM lfg_recommend($1, $2, $3, $4, $5);
PREPARE rec6 AS SELECT count(*) FROM lfg_recommend($1, $2, $3, $4, $5, $6);
PREPARE rec7 AS SELECT count(*) FROM lfg_recommend($1, $2, $3, $4, $5, $6, $7);
PREPARE rec8 AS SELECT count(*) FROM lfg_recommend($1, $2, $3, $4, $5, $6, $7, $8);
PREPARE def5 AS SELECT count(*) FROM lfg_recommend_default($1, $2, $3, $4, $5);
PREPARE arr6 AS SELECT count(*) FROM lfg_recommend_arrays($1, $2, $3, $4, $5, $6);
PREPARE arr7 AS SELECT count(*) FROM lfg_recommend_arrays($1, $2, $3, $4, $5, $6, $7);
PREPARE user3 AS SELECT count(*) FROM lfg_recommend_user($1, $2, $3);
PREPARE pred3 AS SELECT lfg_predict($1, $2, $3) IS NOT NULL;
PREPARE pred4 AS SELECT lfg_predict($1, $2, $3, $4) IS NOT NULL;
EXECUTE rec4('{"1": 5}', NULL, NULL, NULL);
EXECUTE rec5('rec_bias', '{"1": 5}', NULL, NULL, NULL);
EXECUTE rec6('rec_bias', '{"1": 5}', NULL, NULL, NULL, 3);
EXECUTE rec7('rec_bias', '{"1": 5}', NULL, NULL, NULL, 3, '{2}');
EXECUTE rec8('rec_bias', '{"1": 5}', NULL, NULL, NULL, 3, NULL, '{2, 3, 4, 5}');
EXECUTE def5('{"1": 5}', NULL, NULL, NULL, 2);
EXECUTE arr6('rec_bias', '{1, 2}', '{5, 4}', NULL, NULL, NULL);
EXECUTE arr7('rec_bias', '{1, 2}', '{5, 4}', NULL, NULL, NULL, 3);
EXECUTE user3('rec_bias', 1, 4);
EXECUTE pred3('rec_bias', 1, 1);
EXECUTE pred4('rec_bias', 1, 1, 1);
DEALLOCATE ALL;
RESET lfg.model;

-- the planner is told k rows when k is a constant (10 otherwise)
CREATE FUNCTION pg_temp.plan_rows(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN ' || q LOOP
    IF line ~ 'Function Scan' THEN RETURN substring(line FROM 'rows=([0-9]+)'); END IF;
  END LOOP;
  RETURN NULL;
END $$;
SELECT pg_temp.plan_rows($$SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL, NULL, NULL, 37)$$) AS k37,
       pg_temp.plan_rows($$SELECT * FROM lfg_recommend('rec_bias', '{"1": 5}', NULL, NULL, NULL)$$) AS default_k,
       pg_temp.plan_rows($$SELECT * FROM lfg_recommend_arrays('rec_bias', '{1}', '{5}', NULL, NULL, NULL, 3)$$) AS arrays_k3,
       pg_temp.plan_rows($$SELECT * FROM lfg_recommend_user('rec_bias', 1, 250)$$) AS user_k250,
       pg_temp.plan_rows($$SELECT * FROM lfg_similar_items('rec_bias', 1, 5)$$) AS similar_k5;
