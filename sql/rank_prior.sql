-- The ranking prior of LFG models (option popularity_prior; new_user preset: 3)
CREATE TABLE pr AS SELECT * FROM lfg_synthetic_ratings(300, 80, 9000, 43);
CREATE TABLE pu AS
  SELECT u AS user_id, 15 + (u * 7) % 50 AS age, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer'])[1 + u % 3] AS job
  FROM generate_series(1, 300) u;
INSERT INTO lfg.models (name, model)
  SELECT 'prior on', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                             '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
INSERT INTO lfg.models (name, model)
  SELECT 'prior off', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                              '{"preset": "new_user", "hidden": [32, 32], "factors": 8, "epochs": 30, "popularity_prior": 0}')
  FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 250;
-- stored only when set; the paper preset has none
SELECT name, options->'popularity_prior' AS popularity_prior FROM lfg.models WHERE name LIKE 'prior %' ORDER BY name;
SELECT options ? 'popularity_prior' AS paper_has_prior
  FROM lfg_model_info((SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, '{"epochs": 2, "hidden": [8, 8]}')
                         FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 50));
-- the prior adds 3 ln(1 + raters) per item: about 4 bytes per item more
SELECT (SELECT bytes FROM lfg.model_versions WHERE name = 'prior on')
     - (SELECT bytes FROM lfg.model_versions WHERE name = 'prior off') - 80 * 4 BETWEEN 0 AND 64 AS one_section_more;
-- predictions do not change: the prior only orders lists
SELECT bool_and(abs(lfg_predict('prior on', user_id, item_id) - lfg_predict('prior off', user_id, item_id)) < 1e-6) AS same_predictions
  FROM pr WHERE user_id <= 20;
CREATE TABLE pn AS SELECT jsonb_object_agg(item_id, rating) AS ratings FROM pr WHERE user_id = 280;
-- the list is the unrated items by predicted rating plus 3 ln(1 + raters); scores are the predictions
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
-- the experimental multinomial ranking term: stored when set, range checked
SELECT options->'rank_weight' AS rank_weight
  FROM lfg_model_info((SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                                      '{"preset": "new_user", "hidden": [8, 8], "epochs": 2, "rank_weight": 0.5}')
                         FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 50));
SELECT lfg_fit(user_id, item_id, rating, 30, 'F', 'x', '{"rank_weight": 101}') FROM pr;
-- preset ranking: new_user plus the multinomial term with the item side trained, 80 epochs
SELECT options->>'preset' AS preset, options->'rank_weight' AS rank_weight, options->'train_items' AS train_items,
       options->'epochs' AS epochs, options->'val_fraction' AS val_fraction, options->'popularity_prior' AS prior
  FROM lfg_model_info((SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                                      '{"preset": "ranking", "hidden": [8, 8], "epochs": 2}')
                         FROM pr r JOIN pu u USING (user_id) WHERE r.user_id <= 50));
