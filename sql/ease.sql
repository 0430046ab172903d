-- EASE (kind "ease"): training, the model bytes, serving new and known users
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE er AS SELECT * FROM lfg_synthetic_ratings(200, 60, 5000, 7);
-- the same pair twice (X is binary: it counts once) and a NULL row (skipped)
INSERT INTO er VALUES (1, (SELECT min(item_id) FROM er WHERE user_id = 1), 2), (NULL, 1, 3);
INSERT INTO lfg.models (name, model)
  SELECT 'ease', lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": 50}') FROM er WHERE user_id <= 180;
SELECT name, kind, options, metrics - 'train_seconds' - 'train_memory_mb' AS metrics
  FROM lfg.models WHERE name = 'ease';
SELECT i.kind, i.n_users, i.n_items, i.factors,
       i.bytes - (4 * 60 * 60 + 4 * 60 + 8 * (180 + 60 + 181) + 4 * (i.metrics->>'pairs')::int) BETWEEN 256 AND 1024 AS size_as_documented
  FROM lfg.models m, lfg_model_info(m.model) i WHERE m.name = 'ease';
-- the default lambda; the same bytes from the same rows in any order
SELECT options FROM lfg_model_info((SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease"}') FROM er));
SELECT (SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": 50}') FROM er WHERE user_id <= 180)
     = (SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": 50}')
          FROM (SELECT * FROM er WHERE user_id <= 180 ORDER BY rating, item_id DESC, user_id) s) AS deterministic;

-- a new user: rated items excluded, best first, scores not clipped to the rating scale
CREATE TABLE eu AS SELECT jsonb_object_agg(item_id, rating) AS ratings,
                          array_agg(item_id) AS items, array_agg(rating::float8) AS rs
  FROM er WHERE user_id = 190;
SELECT count(*) AS n, bool_and(NOT (u.ratings ? item_id::text)) AS unrated_only,
       bool_and(score < 1) AS ease_scale
  FROM eu u, lfg_recommend('ease', u.ratings, NULL::float8, NULL, NULL, 8);
SELECT bool_and(score >= next) AS best_first
  FROM (SELECT score, lead(score) OVER (ORDER BY ord) AS next
          FROM eu u, lfg_recommend('ease', u.ratings, NULL::float8, NULL, NULL, 8) WITH ORDINALITY AS t(item_id, score, ord)) s;
-- the array form and the candidate form agree with it; an unknown item scores 0
SELECT (SELECT array_agg(item_id ORDER BY score DESC, item_id) FROM eu u, lfg_recommend('ease', u.ratings, NULL::float8, NULL, NULL, 5))
     = (SELECT array_agg(item_id ORDER BY score DESC, item_id) FROM eu u, lfg_recommend_arrays('ease', u.items, u.rs, NULL::float8, NULL, NULL, 5)) AS same_forms;
SELECT bool_and(abs(p - r.score) < 1e-6) AS candidates_match
  FROM eu u, lfg_recommend('ease', u.ratings, NULL::float8, NULL, NULL, 5) r,
       LATERAL unnest(lfg_predict('ease', u.ratings, NULL::float8, NULL, NULL, ARRAY[r.item_id])) p;
SELECT lfg_predict('ease', '{}'::jsonb, NULL::float8, NULL, NULL, ARRAY[999999, NULL]::bigint[]) AS unknown_and_null;
-- x is binary: the rating values do not change the list
SELECT (SELECT array_agg(item_id) FROM eu u, lfg_recommend_arrays('ease', u.items, u.rs, NULL::float8, NULL, NULL, 5))
     = (SELECT array_agg(item_id) FROM eu u, lfg_recommend_arrays('ease', u.items, array_fill(1::float8, ARRAY[cardinality(u.items)]), NULL::float8, NULL, NULL, 5)) AS binary_input;
-- no ratings: the most-rated items (ties by item id)
SELECT (SELECT array_agg(item_id) FROM lfg_recommend('ease', '{}'::jsonb, NULL::float8, NULL, NULL, 5))
     = (SELECT array_agg(item_id) FROM (SELECT item_id FROM (SELECT DISTINCT user_id, item_id FROM er WHERE user_id <= 180) d
                                         GROUP BY item_id ORDER BY count(*) DESC, item_id LIMIT 5) p) AS most_rated;
-- a known user: lfg_predict sums the rows of B of the items they rated
SELECT abs(lfg_predict('ease', 3, i) - (lfg_predict('ease', (SELECT jsonb_object_agg(item_id, rating) FROM er WHERE user_id = 3),
                                                    NULL::float8, NULL, NULL, ARRAY[i]))[1]) < 1e-5 AS known_user
  FROM (SELECT min(item_id) AS i FROM er) m;
SELECT abs(lfg_predict('ease', 99999, (SELECT min(item_id) FROM er))
           - (lfg_predict('ease', '{}'::jsonb, NULL::float8, NULL, NULL, ARRAY[(SELECT min(item_id) FROM er)]))[1]) < 1e-7 AS unknown_user,
       lfg_predict('ease', 3, 999999) AS unknown_item;
-- errors: options, factors, memory limit
SELECT pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": 0}') FROM er$$) AS lambda_zero,
       pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": "big"}') FROM er$$) AS lambda_text,
       pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "factors": 3}') FROM er$$) AS factors,
       pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "preset": "paper"}') FROM er$$) AS preset,
       pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "warm_start": {"model": "ease"}}') FROM er$$) AS warm;
SELECT lfg_fit(user_id, item_id, rating, '{"kind": "ease", "factors": 3}') FROM er;
SELECT lfg_user_factors('ease', '{}'::jsonb, NULL::float8, NULL, NULL);
SELECT * FROM lfg_recommend('ease', '{"1": 9}'::jsonb, NULL::float8, NULL, NULL, 3);
-- a known user (lfg_recommend_user): scores equal lfg_predict's, best first,
-- the filters as for the factor models; new ratings refine x and are left out
SELECT count(*) AS n,
       bool_and(abs(r.score - lfg_predict('ease', 3, r.item_id)) < 1e-9) AS equals_predict,
       (SELECT r2.item_id FROM lfg_recommend_user('ease', 3, 1) r2)
         = (SELECT i.item_id FROM (SELECT DISTINCT item_id FROM er WHERE item_id IS NOT NULL) i
             ORDER BY lfg_predict('ease', 3, i.item_id) DESC, i.item_id LIMIT 1) AS first_is_best
  FROM lfg_recommend_user('ease', 3, 60) r;
SELECT (SELECT array_agg(item_id) FROM lfg_recommend_user('ease', 3, 5, ARRAY[(SELECT item_id FROM lfg_recommend_user('ease', 3, 1))]))
     = (SELECT array_agg(item_id) FROM (SELECT item_id FROM lfg_recommend_user('ease', 3, 6) OFFSET 1) s) AS excluded,
       (SELECT array_agg(item_id ORDER BY item_id) FROM lfg_recommend_user('ease', 3, 10, NULL, NULL, ARRAY[1, 2, 3]))
     <@ ARRAY[1, 2, 3]::bigint[] AS included_only,
       (SELECT count(*) FROM lfg_recommend_user('ease', 3, 60, NULL, '{"1": 5, "2": 4}') r
         WHERE r.item_id IN (1, 2)) AS new_ratings_left_out;
SELECT pg_temp.sqlstate($$SELECT * FROM lfg_recommend_user('ease', 999999, 3)$$) AS unknown_user,
       pg_temp.sqlstate($$SELECT * FROM lfg_similar_items('ease', 1, 3)$$) AS similar_items_refused;
-- a catalogue whose items x items matrix exceeds lfg.train_memory_limit is refused
SET lfg.train_memory_limit = '1MB';
SELECT lfg_fit(i % 600, i, 1 + i % 5, '{"kind": "ease"}') FROM generate_series(1, 600) i;
RESET lfg.train_memory_limit;
-- truncated or altered bytes of an EASE model are refused
SELECT pg_temp.sqlstate(format('SELECT lfg_model_info(%L::bytea)', substr(model, 1, length(model) - 10))) AS truncated,
       pg_temp.sqlstate(format('SELECT lfg_model_info(%L::bytea)', overlay(model placing '\xff'::bytea from 2000))) AS flipped
  FROM lfg.models WHERE name = 'ease';
DELETE FROM lfg.models WHERE name = 'ease';
-- lfg_retrain activates by validation RMSE: refused for EASE
INSERT INTO lfg.models (name, model)
  SELECT 'ease', lfg_fit(user_id, item_id, rating, '{"kind": "ease", "lambda": 50}') FROM er WHERE user_id <= 180;
CREATE TABLE er_src AS SELECT user_id, item_id, rating FROM er WHERE user_id IS NOT NULL;
\set SHOW_CONTEXT never
CALL lfg_retrain('ease', 'er_src');
\set SHOW_CONTEXT errors
DELETE FROM lfg.models WHERE name = 'ease';
