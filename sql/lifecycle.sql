-- Model lifecycle: active versions, rollback, pruning, retraining with a
-- validation gate, privileges (the retrain NOTICEs carry RMSEs: quieted)
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TABLE lc_ratings AS SELECT * FROM lfg_synthetic_ratings(400, 60, 12000, 7);
CREATE VIEW lc_with_users AS
  SELECT r.user_id, r.item_id, r.rating, 20 + r.user_id % 40 AS age,
         CASE WHEN r.user_id % 2 = 0 THEN 'F' ELSE 'M' END AS gender, (r.user_id % 5)::text AS job
    FROM lc_ratings AS r;

-- three versions; with no activation the newest is served
INSERT INTO lfg.models (name, model)
  SELECT 'lc', lfg_fit(user_id, item_id, rating, format('{"factors": 4, "seed": %s}', s)::jsonb)
    FROM lc_ratings, generate_series(1, 3) AS s GROUP BY s ORDER BY s;
SELECT lfg_active_version('lc') AS active, lfg_active_version('nothing') AS missing;
SELECT version, active, activated_at IS NULL AS never_activated, kind, n_users, n_items, factors, bytes > 0 AS sized
  FROM lfg.model_versions WHERE name = 'lc' ORDER BY version;
-- each version serves its own predictions; the name serves the active one
CREATE TEMP TABLE lc_pred AS
  SELECT v, lfg_predict('lc', v, 1, 1) AS p FROM generate_series(1, 3) AS v;
SELECT lfg_predict('lc', 1, 1) = (SELECT p FROM lc_pred WHERE v = 3) AS serves_newest;

-- activate an older version: the next statement serves it
SELECT lfg_activate('lc', 1) AS was_active;
SELECT lfg_active_version('lc') AS active,
       lfg_predict('lc', 1, 1) = (SELECT p FROM lc_pred WHERE v = 1) AS serves_v1;
SELECT version FROM lfg.model_versions WHERE name = 'lc' AND active;
-- rollback goes to the next older version; there is none below 1
SELECT lfg_activate('lc', 3) AS was_active;
SELECT lfg_rollback('lc') AS now_active;
SELECT lfg_predict('lc', 1, 1) = (SELECT p FROM lc_pred WHERE v = 2) AS serves_v2;
SELECT lfg_rollback('lc') AS now_active;
SELECT pg_temp.sqlstate($$SELECT lfg_rollback('lc')$$) AS no_older;
-- a rolled back activation is undone with the transaction
BEGIN;
SELECT lfg_activate('lc', 3) AS was_active;
SELECT lfg_predict('lc', 1, 1) = (SELECT p FROM lc_pred WHERE v = 3) AS serves_v3_inside;
ROLLBACK;
SELECT lfg_active_version('lc') AS active_after_rollback,
       lfg_predict('lc', 1, 1) = (SELECT p FROM lc_pred WHERE v = 1) AS serves_v1_again;

-- bad input
SELECT pg_temp.sqlstate($$SELECT lfg_activate('lc', 9)$$) AS unknown_version,
       pg_temp.sqlstate($$SELECT lfg_activate('nothing', 1)$$) AS unknown_model,
       pg_temp.sqlstate($$SELECT lfg_activate('lc', NULL)$$) AS null_version,
       pg_temp.sqlstate($$SELECT lfg_rollback('nothing')$$) AS rollback_unknown,
       pg_temp.sqlstate($$SELECT lfg_drop_old('lc', 0)$$) AS keep_zero;

-- pruning keeps the newest versions and never the active one (1)
SELECT lfg_drop_old('lc', 1) AS dropped;
SELECT version, active FROM lfg.model_versions WHERE name = 'lc' ORDER BY version;
-- deleting the active version falls back to the newest
DELETE FROM lfg.models WHERE name = 'lc' AND version = 1;
SELECT lfg_active_version('lc') AS active, (SELECT count(*) FROM lfg.active WHERE name = 'lc') AS pinned;
DELETE FROM lfg.models WHERE name = 'lc';

-- retraining: the first version is activated; options come from the active one
CALL lfg_retrain('lcr', 'lc_ratings', '{"factors": 4, "epochs": 30}');
SELECT version, active, metrics ? 'validation_rmse' AS has_validation FROM lfg.model_versions WHERE name = 'lcr';
CALL lfg_retrain('lcr', 'SELECT * FROM lc_ratings WHERE user_id <= 390');
SELECT new_version, previous_version, activated, new_rmse < 1.2 AS sane, tolerance,
       train_rows + validation_rows = (SELECT count(*) FROM lc_ratings WHERE user_id <= 390) AS all_rows,
       validation_rows BETWEEN 300 AND 900 AS about_5_percent
  FROM lfg.retrain_log WHERE name = 'lcr' ORDER BY id DESC LIMIT 1;
SELECT version, (options->>'epochs')::int AS epochs FROM lfg.model_versions WHERE name = 'lcr' ORDER BY version;
-- a much worse model is stored but not activated, and the decision is logged
CALL lfg_retrain('lcr', 'lc_ratings', '{"factors": 1, "epochs": 1, "lr": 0.00001}', tolerance => 0.001);
SELECT new_version, previous_version, activated, new_rmse > previous_rmse AS worse,
       decision LIKE 'kept version 2:%' AS logged
  FROM lfg.retrain_log WHERE name = 'lcr' ORDER BY id DESC LIMIT 1;
SELECT lfg_active_version('lcr') AS active,
       lfg_predict('lcr', 1, 1) = lfg_predict('lcr', 2, 1, 1) AS serves_v2;
-- warm start from the active version: its users and items start where they were
CALL lfg_retrain('lcr', 'lc_ratings', NULL, tolerance => 1, warm_start => true);
SELECT version, metrics->>'warm_start' AS warm_from, (metrics->>'warm_start_version')::int AS from_version,
       (metrics->>'warm_users')::int AS users_known, (metrics->>'warm_items')::int AS items_known,
       options ? 'warm_start' AS in_options
  FROM lfg.models WHERE name = 'lcr' ORDER BY version DESC LIMIT 1;
-- an LFG model retrains from a view with demographics; options carried over
CALL lfg_retrain('lcn', 'lc_with_users', '{"kind": "lfg", "preset": "new_user", "hidden": [16, 16], "factors": 4, "epochs": 3, "pretrain_epochs": 5}');
CALL lfg_retrain('lcn', 'lc_with_users', NULL, tolerance => 1, warm_start => true, force => true);
SELECT version, kind, active, (metrics->>'warm_generator')::bool AS warm_generator
  FROM lfg.model_versions WHERE name = 'lcn' ORDER BY version;
SELECT count(*) AS served FROM lfg_recommend('lcn', '{"1": 5, "2": 3}', 30, 'F', '2', 5);

-- bad retrain input, each leaving nothing behind
SELECT pg_temp.sqlstate($$CALL lfg_retrain('new', 'lc_ratings')$$) AS no_options,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'no_such_table')$$) AS no_table,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'SELECT user_id, item_id FROM lc_ratings')$$) AS no_rating,
       pg_temp.sqlstate($$CALL lfg_retrain('lcn', 'lc_ratings')$$) AS no_demographics,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings', tolerance => -1)$$) AS bad_tolerance,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings', validation_fraction => 0)$$) AS bad_fraction,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings', '[1]')$$) AS bad_options,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings', '{"factors": -1}')$$) AS bad_factors,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'SELECT * FROM lc_ratings WHERE false')$$) AS no_rows;
SELECT count(*) AS versions, max(version) AS newest FROM lfg.models WHERE name = 'lcr';
-- a statement_timeout (or a cancel) mid-training leaves nothing behind either
SET statement_timeout = '200ms';
\set VERBOSITY terse
CALL lfg_retrain('lcr', 'lc_ratings', '{"factors": 4, "epochs": 5000}');
\set VERBOSITY default
RESET statement_timeout;
SELECT count(*) AS versions, max(version) AS newest, lfg_active_version('lcr') AS active
  FROM lfg.models WHERE name = 'lcr';

-- a retrain already running elsewhere (its lock held by another session) refuses at once
CREATE EXTENSION IF NOT EXISTS dblink;
-- this server, whatever its port and socket directory (libpq quoting)
CREATE FUNCTION pg_temp.conninfo_value(v text) RETURNS text LANGUAGE sql AS
  $$SELECT '''' || replace(replace(v, '\', '\\'), '''', '\''') || ''''$$;
SELECT format('dbname=%s user=%s port=%s host=%s', pg_temp.conninfo_value(current_database()),
              pg_temp.conninfo_value(current_user), current_setting('port'),
              pg_temp.conninfo_value(coalesce(nullif(split_part(current_setting('unix_socket_directories'), ',', 1), ''),
                                              'localhost'))) AS lc_conninfo \gset
SELECT dblink_connect('lc_other', :'lc_conninfo');
SELECT * FROM dblink('lc_other', $$SELECT pg_advisory_lock(hashtextextended('lcr', 4998728))$$) AS t(locked text);
SELECT pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings')$$) AS concurrent;
SELECT dblink_disconnect('lc_other');
-- an activation committed while a retrain trains wins: the retrain (held at
-- its activation step by this session's lock) stores its version, logs it,
-- and leaves the activation alone
SELECT dblink_connect('lc_other', :'lc_conninfo');
SELECT count(*) AS held FROM (SELECT pg_advisory_lock(hashtextextended('lcr', 4998729))) AS l;
SELECT dblink_send_query('lc_other', $$CALL lfg_retrain('lcr', 'lc_ratings', NULL, tolerance => 1, force => true)$$) AS sent;
DO $$
BEGIN
  FOR i IN 1 .. 600 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) AS retrain_waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted;
SELECT lfg_activate('lcr', 1) AS was_active;
SELECT pg_advisory_unlock(hashtextextended('lcr', 4998729)) AS released;
SELECT * FROM dblink_get_result('lc_other') AS t(r text);
SELECT dblink_disconnect('lc_other');
SELECT activated, decision LIKE 'not activated: version % is stored, but the active version changed to 1 while training%' AS logged,
       lfg_active_version('lcr') AS active, new_version = (SELECT max(version) FROM lfg.models WHERE name = 'lcr') AS stored
  FROM lfg.retrain_log WHERE name = 'lcr' ORDER BY id DESC LIMIT 1;

-- a reader recommends but cannot change models; a trainer retrains
CREATE ROLE regress_lfg_reader;
CREATE ROLE regress_lfg_trainer;
GRANT SELECT ON lfg.models, lfg.active TO regress_lfg_reader;
GRANT SELECT, INSERT, UPDATE ON lfg.models TO regress_lfg_trainer;
GRANT SELECT, INSERT, UPDATE ON lfg.active TO regress_lfg_trainer;
GRANT INSERT ON lfg.retrain_log TO regress_lfg_trainer;
GRANT USAGE ON SEQUENCE lfg.retrain_log_id_seq TO regress_lfg_trainer;
GRANT SELECT ON lc_ratings TO regress_lfg_trainer;
SET ROLE regress_lfg_reader;
SELECT count(*) AS reader_served FROM lfg_recommend('lcr', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT pg_temp.sqlstate($$SELECT lfg_activate('lcr', 1)$$) AS reader_activate,
       pg_temp.sqlstate($$CALL lfg_retrain('lcr', 'lc_ratings')$$) AS reader_retrain,
       pg_temp.sqlstate($$DELETE FROM lfg.models$$) AS reader_delete;
RESET ROLE;
SET ROLE regress_lfg_trainer;
CALL lfg_retrain('lcr', 'lc_ratings', NULL, tolerance => 1, force => true);
SELECT pg_temp.sqlstate($$DELETE FROM lfg.models$$) AS trainer_delete;
RESET ROLE;
SELECT count(*) AS versions FROM lfg.models WHERE name = 'lcr';
-- lfg_drop_old skips a version a running retrain compares against (it
-- holds the row FOR KEY SHARE, as another session does here) instead of
-- deleting it under the retrain
SELECT dblink_connect('lc_other', :'lc_conninfo');
SELECT dblink_exec('lc_other', 'BEGIN');
SELECT * FROM dblink('lc_other', $$SELECT version FROM lfg.models WHERE name = 'lcr' AND version = 1 FOR KEY SHARE$$) AS t(locked int);
SELECT lfg_activate('lcr', (SELECT max(version) FROM lfg.models WHERE name = 'lcr')) IS NOT NULL AS activated_newest;
SELECT lfg_drop_old('lcr', 1) > 0 AS dropped_others;
SELECT array_agg(version ORDER BY version) = ARRAY[1, max(version)] AS kept_locked_and_active
  FROM lfg.models WHERE name = 'lcr';
SELECT dblink_exec('lc_other', 'COMMIT');
SELECT dblink_disconnect('lc_other');
SELECT lfg_drop_old('lcr', 1) AS dropped_once_unlocked;
DROP OWNED BY regress_lfg_reader, regress_lfg_trainer;
DROP ROLE regress_lfg_reader, regress_lfg_trainer;
DELETE FROM lfg.models WHERE name IN ('lcr', 'lcn');
DELETE FROM lfg.retrain_log;
