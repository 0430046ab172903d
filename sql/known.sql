-- Serving what the model knows: lfg_recommend_user, lfg_similar_items,
-- lfg_item_factors, lfg_explain
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE kr AS SELECT * FROM lfg_synthetic_ratings(200, 60, 5000, 7);
CREATE TABLE ku AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer'])[1 + u % 3] AS job
  FROM generate_series(1, 200) u;
-- users 1..180 train the models; 181..200 are new users. kn_lfg has no ranking head
-- (rank_weight 0), so that its lists follow lfg_predict; rank_prior.sql tests the head
INSERT INTO lfg.models (name, model)
  SELECT 'kn_bias', lfg_fit(user_id, item_id, rating, '{"factors": 8}') FROM kr WHERE user_id <= 180;
INSERT INTO lfg.models (name, model)
  SELECT 'kn_svd', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 8}') FROM kr WHERE user_id <= 180;
INSERT INTO lfg.models (name, model)
  SELECT 'kn_lfg', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                           '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 20, "rank_weight": 0}')
  FROM kr r JOIN ku u USING (user_id) WHERE r.user_id <= 180;
CREATE TABLE kinds AS SELECT unnest(ARRAY['kn_bias', 'kn_svd', 'kn_lfg']) AS m;
CREATE TABLE rated AS
  SELECT user_id, array_agg(item_id) AS items, jsonb_object_agg(item_id, rating) AS ratings
  FROM kr GROUP BY user_id;

-- lfg_recommend_user: k rows, scores equal lfg_predict, rated items left
-- out, for every kind and a few users
SELECT m, count(*) AS n,
       bool_and(r.score = lfg_predict(m, d.user_id, r.item_id)) AS equals_predict,
       bool_and(r.item_id <> ALL (d.items)) AS unrated_only
  FROM kinds, rated d, LATERAL lfg_recommend_user(m, d.user_id, 7, d.items) r
  WHERE d.user_id IN (1, 17, 99, 180)
  GROUP BY m ORDER BY m;
-- best first: the scores are those of sorting every unrated item's
-- lfg_predict, and the first row is the best unrated item
SELECT m, bool_and(r.scores = p.scores) AS top_scores, bool_and(r.items[1] = ANY (p.best)) AS first_is_best
  FROM kinds, rated d,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items, array_agg(score ORDER BY ord) AS scores
                  FROM lfg_recommend_user(m, d.user_id, 10, d.items) WITH ORDINALITY AS t(item_id, score, ord)) r,
       LATERAL (SELECT (array_agg(s ORDER BY s DESC))[1:10] AS scores,
                       array_agg(i) FILTER (WHERE s = (SELECT max(lfg_predict(m, d.user_id, g))
                                                      FROM generate_series(1, 60) g WHERE g <> ALL (d.items))) AS best
                  FROM (SELECT g AS i, lfg_predict(m, d.user_id, g) AS s FROM generate_series(1, 60) g
                         WHERE g <> ALL (d.items)) q) p
  WHERE d.user_id <= 180 AND d.user_id % 9 = 0
  GROUP BY m ORDER BY m;
-- rows come best first (score, then smaller id among equal scores)
SELECT bool_and(score >= coalesce(next, score)) AS non_increasing
  FROM (SELECT score, lead(score) OVER (ORDER BY ord) AS next
          FROM lfg_recommend_user('kn_lfg', 5, 60) WITH ORDINALITY AS t(item_id, score, ord)) s;
-- a batch over every known user
SELECT count(*) = 10 * 180 AS ten_each
  FROM (SELECT DISTINCT user_id FROM kr WHERE user_id <= 180) u, LATERAL lfg_recommend_user('kn_bias', u.user_id, 10) r;

-- k: NULL is 10; above the catalogue, every allowed item; bounds
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', 3, NULL);
SELECT count(*) = 60 - (SELECT count(*) FROM kr WHERE user_id = 3) AS whole_catalogue
  FROM rated d, lfg_recommend_user('kn_bias', 3, 100000, d.items) WHERE d.user_id = 3;
SELECT * FROM lfg_recommend_user('kn_bias', 3, 0);
SELECT * FROM lfg_recommend_user('kn_bias', 3, 100001);
-- exclude: unknown ids are ignored, NULL elements are not
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', 3, 100, ARRAY[1, 2, 3, -7, 1000000]);
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', 3, 100, '{}');
SELECT * FROM lfg_recommend_user('kn_bias', 3, 5, ARRAY[1, NULL]);
SELECT * FROM lfg_recommend_user('kn_bias', 3, 5, ARRAY[[1, 2]]);
-- include: a candidate list; short (scored alone) and long lists give the
-- answer of filtering the whole catalogue's
SELECT (SELECT array_agg(item_id) FROM lfg_recommend_user('kn_lfg', 8, 3, include => ARRAY[4, 9, 9, 30, 31, 999])) =
       (SELECT array_agg(item_id) FROM (SELECT item_id FROM lfg_recommend_user('kn_lfg', 8, 60)
                                          WHERE item_id IN (4, 9, 30, 31) LIMIT 3) s) AS short_list,
       (SELECT array_agg(item_id) FROM lfg_recommend_user('kn_lfg', 8, 5, ARRAY[2, 3],
                                                          include => ARRAY(SELECT generate_series(1, 50)::bigint))) =
       (SELECT array_agg(item_id) FROM (SELECT item_id FROM lfg_recommend_user('kn_lfg', 8, 60)
                                          WHERE item_id <= 50 AND item_id NOT IN (2, 3) LIMIT 5) s) AS long_list;
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', 3, 5, include => '{}');
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', 3, 5, ARRAY[7], include => ARRAY[7]);
SELECT * FROM lfg_recommend_user('kn_bias', 3, 5, include => ARRAY[NULL::bigint]);
-- NULL user: no rows; unknown user and model: errors
SELECT count(*) AS n FROM lfg_recommend_user('kn_bias', NULL);
SELECT * FROM lfg_recommend_user('kn_bias', 190);
SELECT * FROM lfg_recommend_user('kn_nope', 1);
-- the default model: lfg.model names it
SET lfg.model = 'kn_svd';
SELECT count(*) AS n FROM lfg_recommend_user(NULL, 1, 4);
RESET lfg.model;
-- ratings made since training: the stored factors are the prior of the
-- fold-in, the rated items are left out; '{}' is no ratings
SELECT m, (SELECT array_agg(item_id) FROM lfg_recommend_user(m, 12, 10, ratings => '{}')) =
          (SELECT array_agg(item_id) FROM lfg_recommend_user(m, 12, 10)) AS empty_is_none,
          (SELECT bool_and(item_id NOT IN (1, 2, 3)) FROM lfg_recommend_user(m, 12, 60, ratings => '{"1": 5, "2": 1, "3": 5}')) AS rated_left_out,
          (SELECT array_agg(score) FROM lfg_recommend_user(m, 12, 60, ratings => '{"1": 5, "2": 1, "3": 5}')) <>
          (SELECT array_agg(score) FROM lfg_recommend_user(m, 12, 60, ARRAY[1, 2, 3])) AS ratings_move_scores
  FROM kinds ORDER BY m;
-- a very strong prior keeps the stored factors
SET lfg.foldin_reg = 1000000;
SELECT m, (SELECT bool_and(abs(r.score - lfg_predict(m, 12, r.item_id)) < 1e-4)
             FROM lfg_recommend_user(m, 12, 20, ratings => '{"1": 5, "2": 1}') r) AS prior_kept
  FROM kinds ORDER BY m;
RESET lfg.foldin_reg;
SELECT * FROM lfg_recommend_user('kn_bias', 12, 5, ratings => '{"1": 9}');
SELECT * FROM lfg_recommend_user('kn_bias', 12, 5, ratings => '[1]');
SELECT * FROM lfg_recommend_user('kn_bias', 12, 5, ratings => '{"1": 5, "01": 4}');
SELECT count(*) AS unknown_rated_ignored FROM lfg_recommend_user('kn_bias', 12, 5, ratings => '{"77777": 5}');

-- lfg_item_factors: q_i then b_i (0 for SVD); NULL for an unknown or NULL item
SELECT m, array_length(lfg_item_factors(m, 1), 1) AS len FROM kinds ORDER BY m;
SELECT (lfg_item_factors('kn_svd', 1))[9] AS svd_bias, lfg_item_factors('kn_bias', 61) IS NULL AS unknown,
       lfg_item_factors('kn_bias', NULL) IS NULL AS null_item;
-- lfg_similar_items: cosine of q_i, equal to the cosine of lfg_item_factors
CREATE FUNCTION pg_temp.cosine(a real[], b real[]) RETURNS float8 LANGUAGE sql AS $$
  SELECT sum(x::float8 * y) / sqrt(sum(x::float8 * x) * sum(y::float8 * y))
    FROM unnest(a[1:array_length(a, 1) - 1], b[1:array_length(b, 1) - 1]) AS t(x, y) $$;
SELECT m, count(*) AS n,
       bool_and(abs(s.similarity - pg_temp.cosine(lfg_item_factors(m, 10), lfg_item_factors(m, s.item_id))) < 1e-9) AS is_cosine,
       bool_and(s.item_id <> 10) AS self_left_out
  FROM kinds, LATERAL lfg_similar_items(m, 10, 8) s GROUP BY m ORDER BY m;
-- the best are those of sorting every cosine
SELECT m, (SELECT array_agg(item_id) FROM lfg_similar_items(m, 10, 5)) =
          (SELECT array_agg(g ORDER BY c DESC, g) FROM (
             SELECT g::bigint AS g, pg_temp.cosine(lfg_item_factors(m, 10), lfg_item_factors(m, g)) AS c
               FROM generate_series(1, 60) g WHERE g <> 10 ORDER BY c DESC, g LIMIT 5) q) AS sorted
  FROM kinds ORDER BY m;
SELECT count(*) AS n, bool_and(item_id NOT IN (1, 2)) AS excluded
  FROM lfg_similar_items('kn_bias', 10, 100, ARRAY[1, 2, 10, 5000]);
SELECT array_agg(item_id ORDER BY item_id) AS included
  FROM lfg_similar_items('kn_bias', 10, 100, include => ARRAY[10, 11, 12, 12, 5000]);
SELECT count(*) AS n FROM lfg_similar_items('kn_bias', NULL);
SELECT * FROM lfg_similar_items('kn_bias', 61);
SELECT * FROM lfg_similar_items('kn_bias', 10, 0);
SELECT * FROM lfg_similar_items('kn_bias', 10, 5, ARRAY[NULL::bigint]);

-- lfg_explain: one row per rated item the model knows, then the rest; the
-- rows add up to the unclipped score, which clipped is lfg_predict's
CREATE TABLE nu AS
  SELECT d.ratings || '{"77777": 3}' AS ratings, u.age, u.gender, u.job
  FROM rated d JOIN ku u USING (user_id) WHERE user_id = 190;
SELECT m, bool_and(n_rows = n_rated + 1) AS one_row_per_known_rating,
       bool_and(abs(least(5, greatest(1, total)) - p) < 1e-4) AS sums_to_score
  FROM kinds, nu,
       LATERAL (SELECT count(*) AS n_rated FROM jsonb_object_keys(nu.ratings) k WHERE k <> '77777') c,
       generate_series(1, 61) AS g,
       LATERAL (SELECT count(*) AS n_rows, sum(contribution) AS total
                  FROM lfg_explain(m, nu.ratings, nu.age, nu.gender, nu.job, g)) e,
       LATERAL (SELECT (lfg_predict(m, nu.ratings, nu.age, nu.gender, nu.job, ARRAY[g::bigint]))[1] AS p) q
  GROUP BY m ORDER BY m;
-- rows by rated item, the rest last; ratings as given
SELECT bool_and(rated_item_id IS NOT NULL) FILTER (WHERE ord < 4) AS rated_first,
       bool_and(rated_item_id IS NULL AND rating IS NULL) FILTER (WHERE ord = 4) AS rest_last,
       array_agg(rated_item_id ORDER BY ord) FILTER (WHERE ord < 4) AS items,
       array_agg(rating ORDER BY ord) FILTER (WHERE ord < 4) AS ratings
  FROM lfg_explain('kn_bias', '{"30": 2, "4": 5, "12": 3.5}', NULL, NULL, NULL, 7) WITH ORDINALITY AS t(rated_item_id, rating, contribution, ord);
-- no ratings: the rest alone (mu + b_i for BiasSVD)
SELECT count(*) AS n, abs(sum(contribution) - (lfg_predict('kn_bias', '{}', NULL::float8, NULL, NULL, ARRAY[7::bigint]))[1]) < 1e-6 AS base_only
  FROM lfg_explain('kn_bias', '{}', NULL, NULL, NULL, 7);
-- lfg.refine off: LFG's score is the generator's alone, every share 0
\set VERBOSITY terse
SET lfg.refine = off;
SELECT bool_and(contribution = 0) FILTER (WHERE rated_item_id IS NOT NULL) AS shares_zero,
       abs(sum(contribution) - (lfg_predict('kn_lfg', '{"4": 5, "9": 1}', 30, 'F', 'doctor', ARRAY[7::bigint]))[1]) < 1e-4 AS generator_alone
  FROM lfg_explain('kn_lfg', '{"4": 5, "9": 1}', 30, 'F', 'doctor', 7);
RESET lfg.refine;
\set VERBOSITY default
-- a rating above the item's baseline pushes similar items up
SELECT contribution > 0 AS positive FROM lfg_explain('kn_bias', '{"4": 5}', NULL, NULL, NULL,
  (SELECT item_id FROM lfg_similar_items('kn_bias', 4, 1))) WHERE rated_item_id = 4;
SELECT count(*) AS n FROM lfg_explain('kn_bias', '{"4": 5}', NULL, NULL, NULL, NULL);
SELECT * FROM lfg_explain('kn_bias', '{"4": 9}', NULL, NULL, NULL, 7);
SELECT * FROM lfg_explain('kn_lfg', '{"4": 5}', 'Infinity', NULL, NULL, 7);
SELECT count(*) AS in_select_list FROM (SELECT lfg_explain('kn_bias', '{"4": 5}', NULL, NULL, NULL, 7)) s;

-- lfg_recommend (new users) with the filters: without them, lfg_recommend's
-- answer; exclude and include as filters of its whole-catalogue answer
SELECT m,
       (SELECT array_agg(item_id || ':' || score) FROM lfg_recommend(m, nu.ratings, nu.age, nu.gender, nu.job, 8, NULL)) =
       (SELECT array_agg(item_id || ':' || score) FROM lfg_recommend(m, nu.ratings, nu.age, nu.gender, nu.job, 8)) AS unfiltered_same,
       (SELECT array_agg(item_id || ':' || score) FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 5, ARRAY[3, 4, 4, 99999])) =
       (SELECT array_agg(item_id || ':' || score) FROM (SELECT * FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 60)
                                                        WHERE item_id NOT IN (3, 4) LIMIT 5) s) AS excluded,
       (SELECT array_agg(item_id || ':' || score) FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 3, NULL, ARRAY[2, 5, 6, 6, 40, 41])) =
       (SELECT array_agg(item_id || ':' || score) FROM (SELECT * FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 60)
                                                        WHERE item_id IN (5, 6, 40, 41) LIMIT 3) s) AS short_include,
       (SELECT array_agg(item_id || ':' || score) FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 4, ARRAY[10],
                                                                      ARRAY(SELECT generate_series(1, 45)::bigint))) =
       (SELECT array_agg(item_id || ':' || score) FROM (SELECT * FROM lfg_recommend(m, '{"1": 5, "2": 2}', 30, 'M', 'artist', 60)
                                                        WHERE item_id <= 45 AND item_id <> 10 LIMIT 4) s) AS long_include
  FROM kinds, nu ORDER BY m;
SELECT count(*) AS n FROM lfg_recommend('kn_bias', '{}', NULL, NULL, NULL, 5, '{}', '{}');
SELECT * FROM lfg_recommend('kn_bias', '{}', NULL, NULL, NULL, 5, ARRAY[NULL::bigint]);
SELECT * FROM lfg_recommend('kn_bias', '{}', NULL, NULL, NULL, 0, NULL);
SELECT pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 190)$$) AS unknown_user,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 3, 0)$$) AS zero_k,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 3, 100001)$$) AS big_k,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 3, 5, ARRAY[1, NULL])$$) AS null_element,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 3, 5, ARRAY[[1, 2]])$$) AS two_dims,
       pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('kn_bias', 12, 5, ratings => '{"1": 9}')$$) AS off_scale,
       pg_temp.sqlstate($$SELECT * FROM lfg_similar_items('kn_bias', 61)$$) AS unknown_item;
DROP TABLE kr, ku, kinds, rated, nu;
DELETE FROM lfg.models WHERE name LIKE 'kn\_%';
