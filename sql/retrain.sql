-- lfg_retrain without churn: an unchanged source stores no version (three
-- retrains), what counts as a change, force and keep, the gate after a
-- first version from a plain lfg_fit, and the source's columns checked up
-- front with errors that name them (RMSEs in decisions are masked: N)
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  msg text; det text; hint text; ctx text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
                          ctx = PG_EXCEPTION_CONTEXT;
  -- the generated SQL must not be part of the error
  RETURN SQLSTATE || ': ' || msg || CASE WHEN det <> '' THEN ' | ' || det ELSE '' END
         || CASE WHEN ctx ~* 'lfg_fit\(|insert into|pg_typeof|hashint8|count\(' THEN ' | GENERATED SQL SHOWN' ELSE '' END;
END $$;
CREATE FUNCTION pg_temp.last_retrain(model text) RETURNS TABLE (outcome text, previous_version int, new_version int,
    activated bool, decision text, seconds_zero bool, pid bool)
LANGUAGE sql AS $$
  SELECT outcome, previous_version, new_version, activated, regexp_replace(decision, '\d+\.\d+', 'N', 'g'),
         train_seconds = 0, backend_pid = pg_backend_pid()
    FROM lfg.retrain_log WHERE name = model ORDER BY id DESC LIMIT 1
$$;
CREATE TABLE rt_ratings AS SELECT * FROM lfg_synthetic_ratings(300, 50, 7000, 11);

-- the first version comes from lfg_retrain itself
CALL lfg_retrain('rt', 'rt_ratings', '{"factors": 4, "epochs": 20}');
SELECT * FROM pg_temp.last_retrain('rt');
SELECT metrics->>'source_rows' AS source_rows, length(metrics->>'source_fingerprint') AS fingerprint_length,
       metrics->'retrain_options' AS retrain_options
  FROM lfg.models WHERE name = 'rt';
-- three retrains of unchanged data store no version
CALL lfg_retrain('rt', 'rt_ratings');
CALL lfg_retrain('rt', 'rt_ratings');
CALL lfg_retrain('rt', 'rt_ratings');
SELECT count(*) AS versions, lfg_active_version('rt') AS active FROM lfg.models WHERE name = 'rt';
SELECT outcome, new_version, activated, regexp_replace(decision, '\d+\.\d+', 'N', 'g') AS decision,
       train_seconds = 0 AS no_training, source_fingerprint = (SELECT metrics->>'source_fingerprint' FROM lfg.models
                                                               WHERE name = 'rt' AND version = 1) AS same_fingerprint
  FROM lfg.retrain_log WHERE name = 'rt' ORDER BY id;
-- the same rows in another order, from a query, with the options spelt out: unchanged
CALL lfg_retrain('rt', 'SELECT * FROM rt_ratings ORDER BY rating DESC, item_id, user_id');
SELECT options AS rt_options FROM lfg.models WHERE name = 'rt' AND version = 1 \gset
CALL lfg_retrain('rt', 'rt_ratings', :'rt_options');
SELECT (SELECT count(*) FROM lfg.models WHERE name = 'rt') AS versions,
       (SELECT count(*) FROM lfg.retrain_log WHERE name = 'rt' AND outcome = 'skipped') AS skipped;
-- a changed rating, new options, another validation fraction or force: a new version each
UPDATE rt_ratings SET rating = 6 - rating WHERE (user_id, item_id) = (SELECT user_id, item_id FROM rt_ratings ORDER BY 1, 2 LIMIT 1);
CALL lfg_retrain('rt', 'rt_ratings');
SELECT * FROM pg_temp.last_retrain('rt');
CALL lfg_retrain('rt', 'rt_ratings', '{"factors": 4, "epochs": 21}');
SELECT outcome IN ('activated', 'kept') AS trained, new_version FROM lfg.retrain_log WHERE name = 'rt' ORDER BY id DESC LIMIT 1;
CALL lfg_retrain('rt', 'rt_ratings', validation_fraction => 0.1);
SELECT outcome IN ('activated', 'kept') AS trained, new_version FROM lfg.retrain_log WHERE name = 'rt' ORDER BY id DESC LIMIT 1;
CALL lfg_retrain('rt', 'rt_ratings', validation_fraction => 0.1);
SELECT * FROM pg_temp.last_retrain('rt');
CALL lfg_retrain('rt', 'rt_ratings', validation_fraction => 0.1, force => true);
SELECT outcome IN ('activated', 'kept') AS trained, new_version FROM lfg.retrain_log WHERE name = 'rt' ORDER BY id DESC LIMIT 1;
-- a model trained on the same rows with the same options is the same model
SELECT (SELECT model FROM lfg.models WHERE name = 'rt' AND version = 4)
     = (SELECT model FROM lfg.models WHERE name = 'rt' AND version = 5) AS identical_bytes;

-- keep => n prunes after the run, never the active version; a skip prunes too
SELECT lfg_activate('rt', 2) AS was_active;
CALL lfg_retrain('rt', 'rt_ratings', '{"factors": 1, "epochs": 1, "lr": 0.00001}', keep => 2);
SELECT * FROM pg_temp.last_retrain('rt');
SELECT array_agg(version ORDER BY version) AS versions, lfg_active_version('rt') AS active
  FROM lfg.models WHERE name = 'rt';
SELECT pruned FROM lfg.retrain_log WHERE name = 'rt' ORDER BY id DESC LIMIT 1;

-- a first version from a plain lfg_fit has seen every row: the first retrain
-- is not gated against it (it is not refused forever), later ones are
INSERT INTO lfg.models (name, model)
  SELECT 'pf', lfg_fit(user_id, item_id, rating, '{"factors": 8, "epochs": 60, "reg": 0.001}') FROM rt_ratings;
CALL lfg_retrain('pf', 'rt_ratings', tolerance => 0);
SELECT * FROM pg_temp.last_retrain('pf');
SELECT previous_rmse < new_rmse AS plain_fit_looked_better FROM lfg.retrain_log WHERE name = 'pf';
CALL lfg_retrain('pf', 'rt_ratings');
SELECT * FROM pg_temp.last_retrain('pf');
CALL lfg_retrain('pf', 'rt_ratings', force => true);
SELECT * FROM pg_temp.last_retrain('pf');
-- a version held out with a smaller fraction saw part of a larger one's rows: not gated
CALL lfg_retrain('pf', 'rt_ratings', validation_fraction => 0.2);
SELECT * FROM pg_temp.last_retrain('pf');
-- the gate refuses a worse version; the decision says which version stays
CALL lfg_retrain('pf', 'rt_ratings', '{"factors": 1, "epochs": 1, "lr": 0.00001}', validation_fraction => 0.2);
SELECT * FROM pg_temp.last_retrain('pf');
-- ... and an unchanged source then stays skipped, with the kept version active
CALL lfg_retrain('pf', 'rt_ratings', '{"factors": 1, "epochs": 1, "lr": 0.00001}', validation_fraction => 0.2);
SELECT * FROM pg_temp.last_retrain('pf');

-- the source's columns, by name and type, before anything runs
CREATE TABLE rt_users AS
  SELECT u AS user_id, 20 + u % 30 AS age, (ARRAY['F', 'M'])[1 + u % 2]::varchar(1) AS gender, u % 4 AS job
    FROM generate_series(1, 300) AS u;
CREATE DOMAIN rt_id AS bigint CHECK (VALUE > 0);
CREATE VIEW rt_typed AS
  SELECT r.user_id::rt_id AS user_id, r.item_id::int AS item_id, r.rating::numeric AS rating, u.age::real AS age,
         u.gender, u.job
    FROM rt_ratings AS r JOIN rt_users AS u USING (user_id);
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id FROM rt_ratings', '{"factors": 2}')$$) AS no_rating;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'rt_ratings', '{"kind": "lfg"}')$$) AS no_demographics;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id, rating, gender FROM rt_typed', '{"kind": "lfg"}')$$) AS no_age_job;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id::text AS user_id, item_id, rating FROM rt_ratings', '{"factors": 2}')$$) AS text_ids;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id::float8 AS item_id, rating FROM rt_ratings', '{"factors": 2}')$$) AS float_ids;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id, rating::text AS rating FROM rt_ratings', '{"factors": 2}')$$) AS text_rating;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id, rating, age::text AS age, gender, job FROM rt_typed', '{"kind": "lfg"}')$$) AS text_age;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id, rating, age, gender = ''F'' AS gender, job FROM rt_typed', '{"kind": "lfg"}')$$) AS bool_gender;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'no_such_table', '{"factors": 2}')$$) AS no_table;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'SELECT user_id, item_id, rating FROM rt_ratings WHERE 1 / (user_id - user_id) = 0', '{"factors": 2}')$$) AS source_fails;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'rt_ratings', '{"factors": -1}')$$) AS bad_option;
SELECT pg_temp.err($$CALL lfg_retrain('src', 'rt_ratings', '{"factors": 2}', keep => 0)$$) AS keep_zero;
SELECT count(*) AS nothing_stored FROM lfg.models WHERE name = 'src';
-- domains, numeric, real, varchar and integer codes are accepted
CALL lfg_retrain('src', 'rt_typed', '{"kind": "lfg", "hidden": [8, 8], "factors": 2, "epochs": 2, "pretrain_epochs": 2}');
SELECT outcome, new_version FROM lfg.retrain_log WHERE name = 'src';

-- keep => n needs DELETE on lfg.models: refused before training
CREATE ROLE regress_lfg_keeper;
GRANT SELECT, INSERT, UPDATE ON lfg.models, lfg.active TO regress_lfg_keeper;
GRANT INSERT ON lfg.retrain_log TO regress_lfg_keeper;
GRANT USAGE ON SEQUENCE lfg.retrain_log_id_seq TO regress_lfg_keeper;
GRANT SELECT ON rt_ratings TO regress_lfg_keeper;
SET ROLE regress_lfg_keeper;
SELECT pg_temp.err($$CALL lfg_retrain('rt', 'rt_ratings', force => true, keep => 1)$$) AS keep_without_delete;
CALL lfg_retrain('rt', 'rt_ratings', '{"factors": 1, "epochs": 1, "lr": 0.00001}');
RESET ROLE;
SELECT * FROM pg_temp.last_retrain('rt');
DROP OWNED BY regress_lfg_keeper;
DROP ROLE regress_lfg_keeper;
DELETE FROM lfg.models WHERE name IN ('rt', 'pf', 'src');
DELETE FROM lfg.retrain_log;
