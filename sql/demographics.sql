-- An LFG model's demographics: listed by lfg_model_info, and what serving
-- does with a gender or job it was not trained with, or an age outside its
-- training range (lfg.unknown_demographics)
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE dm_ratings AS SELECT * FROM lfg_synthetic_ratings(300, 40, 6000, 5);
CREATE TABLE dm_users AS
  SELECT u AS user_id, 18 + u % 50 AS age, CASE WHEN u % 7 = 0 THEN NULL WHEN u % 2 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer'])[1 + u % 3] AS job
    FROM generate_series(1, 300) AS u;
INSERT INTO lfg.models (name, model)
  SELECT 'dm', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                       '{"hidden": [8, 8], "factors": 4, "epochs": 3, "pretrain_epochs": 3}')
    FROM dm_ratings AS r JOIN dm_users AS u USING (user_id);
-- the vocabularies in byte order, the age range of the training users
SELECT (lfg_model_info(model)).demographics FROM lfg.models WHERE name = 'dm';
SELECT metrics->'age_min' AS age_min, metrics->'age_max' AS age_max FROM lfg.models WHERE name = 'dm';
-- an lfg model without demographics, and kinds that take none
SELECT (lfg_model_info(lfg_fit(user_id, item_id, rating, '{"kind": "lfg", "hidden": [8, 8], "factors": 4, "epochs": 1, "pretrain_epochs": 1}'))).demographics
  FROM dm_ratings;
SELECT (lfg_model_info(lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 1}'))).demographics IS NULL AS biassvd_none
  FROM dm_ratings;

-- the setting
SELECT name, setting, enumvals, context FROM pg_settings WHERE name = 'lfg.unknown_demographics';
SELECT pg_temp.err($$SET lfg.unknown_demographics = 'loud'$$) AS bad_value;

-- ignore (the default): an unseen gender or job is served as unknown (NULL),
-- an age outside the range as given; 'f' is not 'F'. Served by the
-- generator alone (lfg.refine off): the learned fold-in may give the
-- generator no weight for n = 3 (the base prior or plain fold-in instead)
SET lfg.refine = off;
SET client_min_messages = warning;
CREATE TEMP TABLE dm_served AS
  SELECT g, j, a, array_agg(item_id ORDER BY item_id) AS items, array_agg(round(score::numeric, 3) ORDER BY item_id) AS scores
    FROM (VALUES ('F', 'doctor', 30), ('f', 'doctor', 30), (NULL, 'doctor', 30), ('F', 'Doctor', 30), ('F', NULL, 30),
                 ('F', 'doctor', 90), ('F', 'doctor', 67), ('F', 'doctor', 18)) AS v(g, j, a),
         lfg_recommend('dm', '{"1": 5, "2": 1, "3": 4}', a, g, j, 40)
   GROUP BY g, j, a;
RESET lfg.refine;
RESET client_min_messages;
SELECT (SELECT scores FROM dm_served WHERE g = 'f') = (SELECT scores FROM dm_served WHERE g IS NULL) AS lower_f_is_unknown,
       (SELECT scores FROM dm_served WHERE g = 'f') <> (SELECT scores FROM dm_served WHERE g = 'F' AND j = 'doctor' AND a = 30) AS differs_from_upper_f,
       (SELECT scores FROM dm_served WHERE j = 'Doctor') = (SELECT scores FROM dm_served WHERE g = 'F' AND j IS NULL) AS unseen_job_is_unknown;
-- warning: the same answers, with a WARNING naming the known values
SET lfg.unknown_demographics = warning;
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 30, 'f', 'doctor', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 30, 'F', 'pilot', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 90, 'F', 'doctor', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', -40, NULL, NULL, 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 18, 'F', 'doctor', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 67, 'M', 'engineer', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', NULL, NULL, NULL, 5);
-- error: refused, in every serving function; known values and NULLs pass
SET lfg.unknown_demographics = error;
SELECT pg_temp.err($$SELECT * FROM lfg_recommend('dm', '{"1": 5}', 30, 'f', 'doctor', 5)$$) AS recommend_gender,
       pg_temp.err($$SELECT * FROM lfg_recommend_arrays('dm', ARRAY[1], ARRAY[5], 30, 'F', 'Doctor', 5)$$) AS arrays_job,
       pg_temp.err($$SELECT lfg_predict('dm', '{"1": 5}', 1e300, 'F', 'doctor', ARRAY[1, 2])$$) AS predict_age,
       pg_temp.err($$SELECT lfg_predict('dm', '{"1": 5}', 17.5, 'F', 'doctor', ARRAY[1, 2])$$) AS predict_young,
       pg_temp.err($$SELECT lfg_user_factors('dm', '{"1": 5}', 30, 'X', 'doctor')$$) AS factors_gender;
\set VERBOSITY default
SELECT * FROM lfg_recommend('dm', '{"1": 5}', 30, 'f', 'doctor', 5);
\set VERBOSITY terse
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', 18, 'M', 'artist', 5);
SELECT count(*) AS served FROM lfg_recommend('dm', '{"1": 5}', NULL, NULL, NULL, 5);
-- models without demographics are never checked
INSERT INTO lfg.models (name, model)
  SELECT 'dm_mf', lfg_fit(user_id, item_id, rating, '{"factors": 4, "epochs": 2}') FROM dm_ratings;
SELECT count(*) AS served FROM lfg_recommend('dm_mf', '{"1": 5}', 500, 'anything', 'else', 5);
RESET lfg.unknown_demographics;
DELETE FROM lfg.models WHERE name IN ('dm', 'dm_mf');
