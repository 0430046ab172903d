-- The ranking prior of LFG models (option popularity_prior; new_user preset: 3) and
-- the ranking head (option rank_weight; new_user preset: 3)
CREATE TABLE pr AS SELECT * FROM lfg_synthetic_ratings(300, 80, 9000, 43);
CREATE TABLE pu AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer'])[1 + u % 3] AS job
  FROM generate_series(1, 300) u;
INSERT INTO lfg.models (name, model)
  SELECT 'prior on', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                             '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "rank_weight": 0, "base_factors": 8}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
INSERT INTO lfg.models (name, model)
  SELECT 'prior off', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                              '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "popularity_prior": 0, "rank_weight": 0, "base_factors": 8}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
-- stored only when set; the paper preset has none
SELECT name, options->'popularity_prior' AS popularity_prior FROM lfg.models WHERE name LIKE 'prior %' ORDER BY name;
SELECT options ? 'popularity_prior' AS paper_has_prior, options ? 'average_steps' AS paper_has_average_steps
  FROM lfg_model_info((SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, '{"epochs": 2, "hidden": [8, 8]}')
                         FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 50));
-- the prior adds 3 ln(1 + raters) per item: about 4 bytes per item more
SELECT (SELECT bytes FROM lfg.model_versions WHERE name = 'prior on')
     - (SELECT bytes FROM lfg.model_versions WHERE name = 'prior off') - 80 * 4 BETWEEN 0 AND 64 AS one_section_more;
-- predictions do not change: the prior only orders lists
SELECT bool_and(abs(lfg_predict('prior on', user_id, item_id) - lfg_predict('prior off', user_id, item_id)) < 1e-6) AS same_predictions
  FROM pr WHERE user_id <= 20;
CREATE TABLE pn AS SELECT jsonb_object_agg(item_id, rating) AS ratings FROM pr WHERE user_id = 280;
-- the list is the unrated items by predicted rating plus 3 ln(1 + raters); scores are the
-- predictions (base_factors 8: the item side is the base BiasSVD's, so the predictions
-- are the model's own side's, by which lists are ordered)
SELECT r.items = p.items AS prior_order, r.scores = p.scores AS scores_are_predictions
  FROM pn n,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items, array_agg(score ORDER BY ord) AS scores
                  FROM lfg_recommend('prior on', n.ratings, 40, 'F', 'doctor', 10) WITH ORDINALITY AS t(item_id, score, ord)) r,
       LATERAL (SELECT array_agg(g::bigint) AS ids FROM generate_series(1, 80) g WHERE NOT n.ratings ? g::text) c,
       LATERAL (SELECT array_agg(i ORDER BY rank DESC, i) AS items, array_agg(s ORDER BY rank DESC, i) AS scores
                  FROM (SELECT t.i, t.s, t.s + 3 * ln(1 + k.raters) AS rank
                          FROM unnest(c.ids, lfg_predict('prior on', n.ratings, 40, 'F', 'doctor', c.ids)) AS t(i, s)
                          JOIN (SELECT item_id, count(DISTINCT user_id) AS raters FROM pr WHERE user_id <= 250 GROUP BY item_id) k
                            ON k.item_id = t.i
                         ORDER BY rank DESC, t.i LIMIT 10) q) p;
-- no ratings and no demographics: the most-rated items lead
SELECT count(*) FILTER (WHERE item_id IN (SELECT item_id FROM pr WHERE user_id <= 250 GROUP BY item_id
                                          ORDER BY count(*) DESC, item_id LIMIT 10)) >= 5 AS popular_first
  FROM lfg_recommend('prior on', '{}'::jsonb, NULL::float8, NULL, NULL, 10);
-- bad values
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"popularity_prior": -1}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"popularity_prior": "high"}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "popularity_prior": 1}') FROM pr;
DELETE FROM lfg.models WHERE name LIKE 'prior %';
-- the ranking head: a ranking generator and item side trained after the rating model
INSERT INTO lfg.models (name, model)
  SELECT 'head on', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                            '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "rank_epochs": 20}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
INSERT INTO lfg.models (name, model)
  SELECT 'head off', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                             '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "rank_weight": 0}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
-- stored only when set
SELECT name, options->'rank_weight' AS rank_weight, options->'rank_epochs' AS rank_epochs, options->'rank_lr' AS rank_lr,
       options->'average_steps' AS average_steps
  FROM lfg.models WHERE name LIKE 'head %' ORDER BY name;
-- R and c (4 bytes per item and factor, and per item), r_u (per user and factor) and a second generator
SELECT (SELECT bytes FROM lfg.model_versions WHERE name = 'head on')
     - (SELECT bytes FROM lfg.model_versions WHERE name = 'head off') > (80 * 8 + 80 + 250 * 8) * 4 AS head_sections;
-- the predictions are the rating model's, for known and for new users
SELECT bool_and(lfg_predict('head on', user_id, item_id) = lfg_predict('head off', user_id, item_id)) AS same_known_predictions
  FROM pr WHERE user_id <= 20;
SELECT lfg_predict('head on', n.ratings, 40, 'F', 'doctor', c.ids) = lfg_predict('head off', n.ratings, 40, 'F', 'doctor', c.ids)
       AS same_new_predictions
  FROM pn n, (SELECT array_agg(g::bigint) AS ids FROM generate_series(1, 80) g) c;
-- lists: ordered by the head (not by the predicted rating plus the prior), scores the predictions
CREATE TABLE hl AS
  SELECT m.name, n.user_id, array_agg(r.item_id ORDER BY r.ord) AS items, array_agg(r.score ORDER BY r.ord) AS scores
    FROM (SELECT user_id, jsonb_object_agg(item_id, rating) AS ratings FROM pr WHERE user_id > 250 GROUP BY user_id) n,
         (VALUES ('head on'), ('head off')) m(name),
         LATERAL lfg_recommend(m.name, n.ratings, 40, 'F', 'doctor', 80) WITH ORDINALITY AS r(item_id, score, ord)
   GROUP BY m.name, n.user_id;
SELECT count(*) FILTER (WHERE a.items[1:10] <> b.items[1:10]) > 0 AS head_orders_lists
  FROM hl a JOIN hl b USING (user_id) WHERE a.name = 'head on' AND b.name = 'head off';
SELECT bool_and(h.scores = lfg_predict('head on', n.ratings, 40, 'F', 'doctor', h.items)) AS scores_are_predictions
  FROM hl h JOIN (SELECT user_id, jsonb_object_agg(item_id, rating) AS ratings FROM pr GROUP BY user_id) n USING (user_id)
 WHERE h.name = 'head on';
-- every form orders alike: a short include list (scored alone), a long one, an exclude list
SELECT bool_and(s.items = (SELECT array_agg(i ORDER BY o) FROM unnest(h.items) WITH ORDINALITY t(i, o) WHERE i % 10 = 3)) AS short_include,
       bool_and(l.items = (SELECT array_agg(i ORDER BY o) FROM unnest(h.items) WITH ORDINALITY t(i, o) WHERE i % 4 <> 0)) AS long_include,
       bool_and(e.items = (SELECT array_agg(i ORDER BY o) FROM unnest(h.items) WITH ORDINALITY t(i, o) WHERE i % 3 <> 0)) AS exclude
  FROM hl h JOIN (SELECT user_id, jsonb_object_agg(item_id, rating) AS ratings FROM pr GROUP BY user_id) n USING (user_id),
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend('head on', n.ratings, 40, 'F', 'doctor', 80, NULL,
                  (SELECT array_agg(g::bigint) FROM generate_series(1, 80) g WHERE g % 10 = 3)) WITH ORDINALITY AS t(item_id, score, ord)) s,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend('head on', n.ratings, 40, 'F', 'doctor', 80, NULL,
                  (SELECT array_agg(g::bigint) FROM generate_series(1, 80) g WHERE g % 4 <> 0)) WITH ORDINALITY AS t(item_id, score, ord)) l,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend('head on', n.ratings, 40, 'F', 'doctor', 80,
                  (SELECT array_agg(g::bigint) FROM generate_series(1, 80) g WHERE g % 3 = 0), NULL) WITH ORDINALITY AS t(item_id, score, ord)) e
 WHERE h.name = 'head on';
-- known users: lfg_recommend_user orders by the head too (its stored r_u), scores are lfg_predict's
SELECT bool_and(r.score = lfg_predict('head on', u.user_id, r.item_id)) AS known_scores_are_predictions
  FROM generate_series(1, 20) u(user_id), LATERAL lfg_recommend_user('head on', u.user_id, 10) r;
SELECT bool_and(f.items = (SELECT array_agg(i ORDER BY o) FROM unnest(a.items) WITH ORDINALITY t(i, o) WHERE i % 10 = 3)) AS known_short_include,
       count(*) FILTER (WHERE a.items[1:10] <> b.items[1:10]) > 0 AS known_head_orders_lists
  FROM generate_series(1, 20) u(user_id),
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend_user('head on', u.user_id, 80) WITH ORDINALITY AS t(item_id, score, ord)) a,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend_user('head off', u.user_id, 80) WITH ORDINALITY AS t(item_id, score, ord)) b,
       LATERAL (SELECT array_agg(item_id ORDER BY ord) AS items FROM lfg_recommend_user('head on', u.user_id, 80, NULL, NULL,
                  (SELECT array_agg(g::bigint) FROM generate_series(1, 80) g WHERE g % 10 = 3)) WITH ORDINALITY AS t(item_id, score, ord)) f;
DELETE FROM lfg.models WHERE name LIKE 'head %';
-- range checks
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"rank_weight": 101}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"rank_epochs": 0}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"rank_lr": 0}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"average_steps": -1}') FROM pr;
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"average_steps": 1.5}') FROM pr;
-- preset ranking: since the ranking head, the same as new_user
SELECT options->>'preset' AS preset, options->'rank_weight' AS rank_weight, options->'train_items' AS train_items,
       options->'epochs' AS epochs, options->'val_fraction' AS val_fraction, options->'popularity_prior' AS prior,
       options->'average_steps' AS average_steps
  FROM lfg_model_info((SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                                      '{"preset": "ranking", "hidden": [8, 8], "epochs": 2, "rank_epochs": 2}')
                         FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 50));
