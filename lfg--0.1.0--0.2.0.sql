/* lfg--0.1.0--0.2.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION lfg UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0: model lifecycle (active versions, rollback, pruning), retraining
-- in one call with a validation gate, and its log. doc/operations.md.
-- Every reference is schema-qualified and functions pin their search_path.

------------------------------------------------------------------------
-- Metrics added after training (the validation RMSE of lfg_retrain) are
-- kept by the fill trigger; the bytes' own metrics and the timing win.
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION lfg.models_fill() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	info record;
	extra jsonb := '{}';
BEGIN
	IF NEW.model IS NULL THEN
		RAISE EXCEPTION 'model bytes must not be NULL'
			USING ERRCODE = 'not_null_violation',
			      HINT = 'Insert the result of lfg_fit, e.g. INSERT INTO lfg.models (name, model) SELECT ''m'', lfg_fit(...) FROM ratings.';
	END IF;
	IF NEW.name IS NULL OR NEW.name = '' OR pg_catalog.length(NEW.name) > 200 THEN
		RAISE EXCEPTION 'model name must be between 1 and 200 characters'
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Name the model, e.g. ''movies''.';
	END IF;
	SELECT i.kind, i.options, i.metrics INTO info
	  FROM @extschema@.lfg_model_info(NEW.model) AS i;
	IF pg_catalog.jsonb_typeof(NEW.metrics) = 'object' THEN
		extra := NEW.metrics;
	END IF;
	NEW.kind := info.kind;
	NEW.options := info.options;
	-- the training time is not part of the bytes (they are deterministic):
	-- take it from the backend that trained the model, or keep the given one
	NEW.metrics := extra || info.metrics || coalesce(@extschema@.lfg_fit_timing(NEW.model), '{}');
	IF TG_OP = 'INSERT' AND NEW.version IS NULL THEN
		-- serialise version numbering per name until commit
		PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(NEW.name, 4998727));
		SELECT coalesce(max(m.version), 0) + 1 INTO NEW.version
		  FROM lfg.models AS m WHERE m.name = NEW.name;
	END IF;
	RETURN NEW;
END
$$;

------------------------------------------------------------------------
-- Active versions
------------------------------------------------------------------------

-- The active version of a name is its row here, else its newest version.
-- Deleting the active version (lfg_drop_old never does) deletes the row,
-- and the name falls back to its newest version.
CREATE TABLE lfg.active (
	name text PRIMARY KEY,
	version integer NOT NULL,
	activated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	FOREIGN KEY (name, version) REFERENCES lfg.models (name, version) ON DELETE CASCADE
);
COMMENT ON TABLE lfg.active IS
'the version each model name serves, when it is not simply the newest one (lfg_activate, lfg_rollback, lfg_retrain)';

-- the serving cache of every backend follows this table as it follows lfg.models
CREATE TRIGGER active_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lfg.active
	FOR EACH STATEMENT EXECUTE FUNCTION lfg.models_invalidate();

SELECT pg_catalog.pg_extension_config_dump('lfg.active', '');

CREATE FUNCTION @extschema@.lfg_active_version(model_name text) RETURNS integer
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
	SELECT coalesce((SELECT a.version FROM lfg.active AS a WHERE a.name = model_name),
	                (SELECT max(m.version) FROM lfg.models AS m WHERE m.name = model_name))
$$;
COMMENT ON FUNCTION @extschema@.lfg_active_version(text) IS
'the version a model name serves: the activated one, else the newest; NULL if the name has no version';

CREATE FUNCTION @extschema@.lfg_activate(model_name text, version integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	previous integer;
BEGIN
	IF model_name IS NULL OR version IS NULL THEN
		RAISE EXCEPTION 'model name and version must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- one activation of a name at a time (the retrain procedure takes it too)
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(model_name, 4998729));
	PERFORM 1 FROM lfg.models AS m WHERE m.name = model_name AND m.version = lfg_activate.version;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'version % of model "%" does not exist', version, model_name
			USING ERRCODE = 'undefined_object',
			      HINT = format('List the versions with SELECT * FROM lfg.model_versions WHERE name = %L.', model_name);
	END IF;
	previous := @extschema@.lfg_active_version(model_name);
	INSERT INTO lfg.active AS a (name, version) VALUES (model_name, lfg_activate.version)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, activated_at = pg_catalog.now();
	-- preloaded: in shared memory before the switch commits
	PERFORM lfg.warm(model_name, lfg_activate.version);
	RETURN previous;
END
$$;
COMMENT ON FUNCTION @extschema@.lfg_activate(text, integer) IS
'make a version the one a model name serves (from the next statement of every backend after commit); returns the version served before';

CREATE FUNCTION @extschema@.lfg_rollback(model_name text) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	current integer;
	target integer;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(model_name, 4998729));
	current := @extschema@.lfg_active_version(model_name);
	IF current IS NULL THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name
			USING ERRCODE = 'undefined_object',
			      HINT = 'List the models with SELECT * FROM lfg.model_versions.';
	END IF;
	SELECT max(m.version) INTO target FROM lfg.models AS m
	 WHERE m.name = model_name AND m.version < current;
	IF target IS NULL THEN
		RAISE EXCEPTION 'model "%" has no version older than its active version %', model_name, current
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'lfg_activate(name, version) activates any stored version.';
	END IF;
	PERFORM @extschema@.lfg_activate(model_name, target);
	RETURN target;
END
$$;
COMMENT ON FUNCTION @extschema@.lfg_rollback(text) IS
'activate the newest version older than the active one; returns it';

CREATE FUNCTION @extschema@.lfg_drop_old(model_name text, keep integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	dropped integer;
BEGIN
	IF keep < 1 THEN
		RAISE EXCEPTION 'keep must be at least 1, not %', keep
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'To delete every version, DELETE FROM lfg.models WHERE name = ...';
	END IF;
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(model_name, 4998729));
	-- a version locked by a running lfg_retrain (the one it compares
	-- against) is skipped, not waited for
	DELETE FROM lfg.models AS m
	 USING (SELECT d.name, d.version FROM lfg.models AS d
	         WHERE d.name = model_name
	           AND d.version IS DISTINCT FROM @extschema@.lfg_active_version(model_name)
	           AND d.version NOT IN (SELECT k.version FROM lfg.models AS k WHERE k.name = model_name
	                                  ORDER BY k.version DESC LIMIT keep)
	           FOR UPDATE OF d SKIP LOCKED) AS old
	 WHERE m.name = old.name AND m.version = old.version;
	GET DIAGNOSTICS dropped = ROW_COUNT;
	RETURN dropped;
END
$$;
COMMENT ON FUNCTION @extschema@.lfg_drop_old(text, integer) IS
'delete all but the newest keep versions of a model, never the active one; returns how many were deleted';

------------------------------------------------------------------------
-- The versions at a glance
------------------------------------------------------------------------

CREATE VIEW lfg.model_versions AS
SELECT m.name, m.version, m.kind,
       m.version = coalesce(a.version, n.newest) AS active,
       m.created_at,
       CASE WHEN a.version = m.version THEN a.activated_at END AS activated_at,
       pg_catalog.octet_length(m.model)::bigint AS bytes,
       (m.metrics->>'users')::integer AS n_users,
       (m.metrics->>'items')::integer AS n_items,
       (m.options->>'factors')::integer AS factors,
       m.options, m.metrics
  FROM lfg.models AS m
  JOIN (SELECT mm.name, max(mm.version) AS newest FROM lfg.models AS mm GROUP BY mm.name) AS n
    ON n.name = m.name
  LEFT JOIN lfg.active AS a ON a.name = m.name;
COMMENT ON VIEW lfg.model_versions IS
'every stored version: kind, whether it is the one served, sizes, options and metrics (with the validation RMSE of retrains)';

------------------------------------------------------------------------
-- Retraining
------------------------------------------------------------------------

CREATE TABLE lfg.retrain_log (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	started_at timestamptz NOT NULL,
	finished_at timestamptz NOT NULL,
	previous_version integer,
	new_version integer,
	previous_rmse double precision,
	new_rmse double precision,
	tolerance double precision NOT NULL,
	activated boolean NOT NULL,
	decision text NOT NULL,
	train_rows bigint NOT NULL,
	validation_rows bigint NOT NULL,
	train_seconds double precision NOT NULL,
	outcome text NOT NULL CHECK (outcome IN ('activated', 'kept', 'skipped', 'superseded')),
	source_fingerprint text NOT NULL,
	pruned integer NOT NULL DEFAULT 0,
	backend_pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid()
);
COMMENT ON TABLE lfg.retrain_log IS
'one row per completed lfg_retrain: its outcome (activated, kept, skipped, superseded), both validation RMSEs, the source fingerprint and the backend (cron.job_run_details.job_pid)';
SELECT pg_catalog.pg_extension_config_dump('lfg.retrain_log', '');
SELECT pg_catalog.pg_extension_config_dump('lfg.retrain_log_id_seq', '');

-- lfg_retrain re-raises the errors of the SQL it generates through this,
-- so that the error shows the cause, not the generated statement
CREATE FUNCTION lfg.retrain_error(state text, message text, detail text, hint text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF coalesce(detail, '') = '' AND coalesce(hint, '') = '' THEN
		RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message;
	ELSIF coalesce(hint, '') = '' THEN
		RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail;
	ELSIF coalesce(detail, '') = '' THEN
		RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, HINT = hint;
	ELSE
		RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail, HINT = hint;
	END IF;
END
$$;
COMMENT ON FUNCTION lfg.retrain_error(text, text, text, text) IS
'internal to lfg_retrain: raise an error with this SQLSTATE, message, detail and hint';

CREATE PROCEDURE @extschema@.lfg_retrain(model_name text, source text, options jsonb DEFAULT NULL,
	tolerance double precision DEFAULT 0.005, validation_fraction double precision DEFAULT 0.05,
	warm_start boolean DEFAULT false, keep integer DEFAULT NULL, force boolean DEFAULT false)
LANGUAGE plpgsql AS $$
DECLARE
	-- the source is the caller's SQL: it is resolved and run with the
	-- caller's search_path; everything else runs with pg_catalog, pg_temp
	caller_path text := pg_catalog.current_setting('search_path');
	started timestamptz := pg_catalog.clock_timestamp();
	trained timestamptz;
	previous integer;
	previous_pin integer;
	current_pin integer;
	previous_options jsonb;
	previous_kind text;
	previous_fraction double precision;
	comparable boolean;
	opts jsonb;
	fit_opts jsonb;
	model_kind text;
	src text;
	src_label text;
	holdout text;
	cols text;
	row_hash text;
	needed text[];
	missing text[] := '{}';
	col text;
	col_type oid;
	base_type oid;
	type_ok boolean;
	newest_version integer;
	newest_metrics jsonb;
	newest_options jsonb;
	hash_sum numeric;
	fingerprint text;
	unchanged boolean := false;
	new_version integer;
	previous_rmse double precision;
	new_rmse double precision;
	train_rows bigint;
	validation_rows bigint;
	activate boolean;
	outcome text;
	decision text;
	pruned integer := 0;
	attempt integer;
	e_state text;
	e_message text;
	e_detail text;
	e_hint text;
BEGIN
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
	IF model_name IS NULL OR source IS NULL THEN
		RAISE EXCEPTION 'model_name and source must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF tolerance IS NULL OR NOT (tolerance >= 0 AND tolerance < 'Infinity'::float8) THEN
		RAISE EXCEPTION 'tolerance must be a finite number >= 0, not %', tolerance
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'It is the RMSE by which the new version may be worse than the active one on the validation rows and still be activated; the default is 0.005.';
	END IF;
	IF validation_fraction IS NULL OR NOT (validation_fraction > 0 AND validation_fraction <= 0.5) THEN
		RAISE EXCEPTION 'validation_fraction must be in (0, 0.5], not %', validation_fraction
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'The default holds out 0.05 of the rows.';
	END IF;
	IF keep < 1 THEN
		RAISE EXCEPTION 'keep must be at least 1, not %', keep
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'keep => n keeps the newest n versions (and the active one) after the retrain; leave it NULL to keep every version.';
	END IF;
	-- pruning needs DELETE: refuse before training rather than after
	IF keep IS NOT NULL AND NOT pg_catalog.has_table_privilege('lfg.models', 'DELETE') THEN
		RAISE EXCEPTION 'permission denied to delete old versions of model "%"', model_name
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'keep => n deletes versions: grant DELETE on lfg.models to this role, or leave keep out and prune with lfg_drop_old elsewhere.';
	END IF;
	-- one retrain of a name at a time: a second one refuses at once
	IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(model_name, 4998728)) THEN
		RAISE EXCEPTION 'another lfg_retrain of model "%" is running', model_name
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish (see pg_stat_activity); its result is logged in lfg.retrain_log.';
	END IF;

	-- the version to compare against, locked until the end (lfg_drop_old
	-- skips it); one deleted meanwhile is looked up again
	FOR attempt IN 1..3 LOOP
		previous := @extschema@.lfg_active_version(model_name);
		EXIT WHEN previous IS NULL;
		SELECT m.options, m.kind, (m.metrics->>'validation_fraction')::float8
		  INTO previous_options, previous_kind, previous_fraction
		  FROM lfg.models AS m WHERE m.name = model_name AND m.version = previous
		   FOR KEY SHARE OF m;
		EXIT WHEN FOUND;
		previous := NULL;
	END LOOP;
	previous_pin := (SELECT a.version FROM lfg.active AS a WHERE a.name = model_name);
	opts := coalesce(options, previous_options);
	IF opts IS NULL THEN
		RAISE EXCEPTION 'model "%" has no version to take the training options from', model_name
			USING ERRCODE = 'undefined_object',
			      HINT = 'Pass the options of the first version, e.g. ''{"kind": "biassvd"}'' or ''{"kind": "lfg", "preset": "new_user"}''.';
	END IF;
	IF pg_catalog.jsonb_typeof(opts) <> 'object' THEN
		RAISE EXCEPTION 'options must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Pass NULL to reuse the active version''s options.';
	END IF;
	model_kind := coalesce(opts->>'kind', previous_kind, 'biassvd');
	IF model_kind = 'ease' THEN
		RAISE EXCEPTION 'lfg_retrain cannot retrain model "%" of kind ease', model_name
			USING ERRCODE = 'feature_not_supported',
			      DETAIL = 'lfg_retrain activates by validation RMSE, and EASE predicts no rating.',
			      HINT = 'Retrain it with INSERT INTO lfg.models (name, model) SELECT ..., lfg_fit(...), then lfg_activate.';
	END IF;
	fit_opts := opts;
	-- start from the active version: its users and items keep their
	-- factors, new ones start fresh (doc/operations.md)
	IF warm_start AND previous IS NOT NULL THEN
		fit_opts := opts || pg_catalog.jsonb_build_object('warm_start',
			pg_catalog.jsonb_build_object('model', model_name, 'version', previous));
	END IF;

	-- the held-out rows: a fixed hash of (user, item), so a rating stays on
	-- its side of the split from one retrain to the next
	holdout := pg_catalog.format('(pg_catalog.hashint8extended(s.item_id::bigint, s.user_id::bigint) '
	                             'OPERATOR(pg_catalog.&) 1048575) OPERATOR(pg_catalog.<) %s',
	                             (validation_fraction * 1048576)::bigint);
	-- the columns lfg_fit takes, and a 64-bit hash of each row's values
	-- (NULL text and NULL age hash apart from every value)
	cols := 's.user_id::bigint, s.item_id::bigint, s.rating::float8';
	row_hash := 'pg_catalog.hashfloat8extended(s.rating::float8, pg_catalog.hashint8extended(s.item_id::bigint, '
	            'pg_catalog.hashint8extended(s.user_id::bigint, 7919)))';
	needed := ARRAY['user_id', 'item_id', 'rating'];
	IF model_kind = 'lfg' THEN
		cols := cols || ', s.age::float8, s.gender::text, s.job::text';
		row_hash := pg_catalog.format('pg_catalog.hashfloat8extended(coalesce(s.age::float8, ''NaN''), %s)', row_hash);
		row_hash := pg_catalog.format('coalesce(pg_catalog.hashtextextended(s.gender::text, %1$s), '
		                              'pg_catalog.hashint8extended(1, %1$s))', row_hash);
		row_hash := pg_catalog.format('coalesce(pg_catalog.hashtextextended(s.job::text, %1$s), '
		                              'pg_catalog.hashint8extended(2, %1$s))', row_hash);
		needed := needed || ARRAY['age', 'gender', 'job'];
	END IF;

	BEGIN
		-- the caller's SQL, with the caller's search_path: a table or view
		-- name, or a query
		PERFORM pg_catalog.set_config('search_path', caller_path, true);
		IF pg_catalog.texticregexeq(source, '^\s*\(?\s*(select|with|values|table)\y') THEN
			src := '(' OPERATOR(pg_catalog.||) source OPERATOR(pg_catalog.||) ')';
			src_label := 'the source query';
		ELSE
			src := source::pg_catalog.regclass::pg_catalog.text;
			src_label := pg_catalog.format('source %s', src);
		END IF;
		PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

		-- the columns, by name and type, before anything runs (a failed
		-- probe's subtransaction restores this search_path)
		FOREACH col IN ARRAY needed LOOP
			BEGIN
				PERFORM pg_catalog.set_config('search_path', caller_path, true);
				EXECUTE pg_catalog.format('SELECT pg_catalog.pg_typeof(x.%1$I)::pg_catalog.oid FROM (SELECT) AS d '
				                          'LEFT JOIN LATERAL (SELECT s.%1$I FROM %2$s AS s LIMIT 0) AS x ON true',
				                          col, src)
				   INTO col_type;
				PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
			EXCEPTION WHEN undefined_column THEN
				missing := missing || col;
				CONTINUE;
			END;
			base_type := col_type;
			FOR attempt IN 1..32 LOOP
				EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type AS t WHERE t.oid = base_type AND t.typtype = 'd');
				base_type := (SELECT t.typbasetype FROM pg_catalog.pg_type AS t WHERE t.oid = base_type);
			END LOOP;
			type_ok := CASE
				WHEN col IN ('user_id', 'item_id') THEN base_type IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
				WHEN col IN ('rating', 'age') THEN base_type IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
				                                                'float4'::regtype, 'float8'::regtype, 'numeric'::regtype)
				ELSE base_type IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype,
				                   'int2'::regtype, 'int4'::regtype, 'int8'::regtype)
			END;
			IF NOT type_ok THEN
				RAISE EXCEPTION 'column "%" of % has type %', col, src_label, pg_catalog.format_type(col_type, NULL)
					USING ERRCODE = 'invalid_parameter_value',
					      DETAIL = CASE
					          WHEN col IN ('user_id', 'item_id') THEN 'user_id and item_id must be smallint, integer or bigint.'
					          WHEN col IN ('rating', 'age') THEN pg_catalog.format('%s must be a number: smallint, integer, bigint, real, double precision or numeric.', col)
					          ELSE pg_catalog.format('%s must be text (text, varchar, char) or an integer code.', col) END,
					      HINT = pg_catalog.format('Cast it in a query source, e.g. ''SELECT ..., %1$s::%2$s AS %1$s FROM ...''.',
					                               col, CASE WHEN col IN ('user_id', 'item_id') THEN 'bigint'
					                                         WHEN col IN ('rating', 'age') THEN 'float8' ELSE 'text' END);
			END IF;
		END LOOP;
		IF cardinality(missing) > 0 THEN
			RAISE EXCEPTION '% has no column %', src_label, pg_catalog.array_to_string(missing, ', ')
				USING ERRCODE = 'undefined_column',
				      DETAIL = pg_catalog.format('A model of kind %s trains on the columns %s.', model_kind,
				                                 pg_catalog.array_to_string(needed, ', ')),
				      HINT = CASE WHEN model_kind = 'lfg'
				                  THEN 'Name them in a query source, e.g. ''SELECT r.user_id, r.item_id, r.rating, u.age, u.gender, u.job FROM ratings r JOIN users u USING (user_id)''.'
				                  ELSE 'Name them in a query source, e.g. ''SELECT uid AS user_id, iid AS item_id, stars AS rating FROM feedback''.' END;
		END IF;

		-- one pass: the split's sizes and the source's fingerprint (row
		-- count and the sum of the rows' hashes, whatever their order)
		PERFORM pg_catalog.set_config('search_path', caller_path, true);
		EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FILTER (WHERE NOT %1$s), '
		                          'pg_catalog.count(*) FILTER (WHERE %1$s), pg_catalog.sum(%3$s) FROM %2$s AS s',
		                          holdout, src, row_hash)
		   INTO train_rows, validation_rows, hash_sum;
		PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
		fingerprint := pg_catalog.md5(pg_catalog.format('%s|%s|%s|%s', model_kind,
		                              (validation_fraction * 1048576)::bigint,
		                              train_rows + validation_rows, coalesce(hash_sum, 0)));
		IF validation_rows = 0 THEN
			RAISE EXCEPTION 'no validation rows among the % rows of the source', train_rows
				USING ERRCODE = 'data_exception',
				      HINT = 'Raise validation_fraction, or train on more ratings.';
		END IF;

		-- unchanged: the newest version was trained by lfg_retrain on rows
		-- with this fingerprint and with these options
		SELECT m.version, m.metrics, m.options INTO newest_version, newest_metrics, newest_options
		  FROM lfg.models AS m WHERE m.name = model_name ORDER BY m.version DESC LIMIT 1;
		unchanged := coalesce(NOT coalesce(force, false) AND newest_metrics->>'source_fingerprint' = fingerprint
		                      AND (newest_metrics->'retrain_options' = opts OR newest_options = opts), false);

		IF NOT unchanged THEN
			PERFORM pg_catalog.set_config('search_path', caller_path, true);
			EXECUTE pg_catalog.format('INSERT INTO lfg.models AS m (name, model) '
			                          'SELECT $1, @extschema@.lfg_fit(%s, $2) FROM %s AS s '
			                          'WHERE NOT %s RETURNING m.version', cols, src, holdout)
			   INTO new_version USING model_name, fit_opts;
			trained := pg_catalog.clock_timestamp();
			-- validation RMSE of the new and of the previously active
			-- version, in one pass over the held-out rows (lfg_predict is
			-- strict: no previous version gives a NULL RMSE)
			EXECUTE pg_catalog.format('SELECT pg_catalog.sqrt(pg_catalog.avg((@extschema@.lfg_predict($1, $2, '
			                          's.user_id::bigint, s.item_id::bigint) OPERATOR(pg_catalog.-) s.rating::float8) '
			                          'OPERATOR(pg_catalog.^) 2)), '
			                          'pg_catalog.sqrt(pg_catalog.avg((@extschema@.lfg_predict($1, $3, '
			                          's.user_id::bigint, s.item_id::bigint) OPERATOR(pg_catalog.-) s.rating::float8) '
			                          'OPERATOR(pg_catalog.^) 2)) FROM %s AS s WHERE %s', src, holdout)
			   INTO new_rmse, previous_rmse USING model_name, new_version, previous;
			PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
		                        e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
		PERFORM lfg.retrain_error(e_state, e_message, e_detail, e_hint);
	END;

	IF unchanged THEN
		outcome := 'skipped';
		activate := false;
		trained := started;
		decision := pg_catalog.format('skipped: the source is unchanged since version %s (%s rows, same options); '
		                              'version %s stays active', newest_version, train_rows + validation_rows, previous);
	ELSE
		UPDATE lfg.models AS m
		   SET metrics = m.metrics || pg_catalog.jsonb_build_object('validation_rmse', new_rmse,
		                 'validation_rows', validation_rows, 'validation_fraction', validation_fraction,
		                 'source_rows', train_rows + validation_rows,
		                 'source_fingerprint', fingerprint, 'retrain_options', opts)
		 WHERE m.name = model_name AND m.version = new_version;

		-- the gate compares like with like only if the active version never
		-- trained on these validation rows: it was held out by lfg_retrain
		-- with at least this fraction (a superset of these rows)
		comparable := (previous_fraction * 1048576)::bigint >= (validation_fraction * 1048576)::bigint;
		activate := previous IS NULL OR NOT coalesce(comparable, false) OR new_rmse <= previous_rmse + tolerance;
		outcome := CASE WHEN activate THEN 'activated' ELSE 'kept' END;
		decision := CASE
			WHEN previous IS NULL THEN
				pg_catalog.format('activated version %s: the first version (validation RMSE %s)',
				                  new_version, round(new_rmse::numeric, 4))
			WHEN NOT coalesce(comparable, false) THEN
				pg_catalog.format('activated version %s: validation RMSE %s; not compared with version %s (%s), '
				                  'which was not trained by lfg_retrain with this validation split and has seen these rows',
				                  new_version, round(new_rmse::numeric, 4), previous, round(previous_rmse::numeric, 4))
			WHEN activate THEN
				pg_catalog.format('activated version %s: validation RMSE %s against %s of version %s (tolerance %s)',
				                  new_version, round(new_rmse::numeric, 4), round(previous_rmse::numeric, 4), previous, tolerance)
			ELSE
				pg_catalog.format('kept version %s: validation RMSE %s of version %s is worse than %s by more than %s',
				                  previous, round(new_rmse::numeric, 4), new_version, round(previous_rmse::numeric, 4), tolerance)
		END;
		-- the new version is the newest: without a row in lfg.active it would
		-- be served, so a rejected one pins the previous version. An
		-- activation committed while this one trained (lfg_activate,
		-- lfg_rollback) wins.
		PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(model_name, 4998729));
		current_pin := (SELECT a.version FROM lfg.active AS a WHERE a.name = model_name);
		IF current_pin IS DISTINCT FROM previous_pin THEN
			activate := false;
			outcome := 'superseded';
			decision := pg_catalog.format('not activated: version %s is stored, but the active version changed to %s '
			                              'while training (validation RMSE %s against %s of version %s)',
			                              new_version, coalesce(current_pin::text, 'the newest'), round(new_rmse::numeric, 4),
			                              coalesce(round(previous_rmse::numeric, 4)::text, 'none'), coalesce(previous::text, 'none'));
			IF current_pin IS NULL AND previous IS NOT NULL THEN
				INSERT INTO lfg.active (name, version)
					SELECT model_name, previous WHERE EXISTS
						(SELECT 1 FROM lfg.models AS m WHERE m.name = model_name AND m.version = previous);
			END IF;
		ELSE
			INSERT INTO lfg.active AS a (name, version)
				VALUES (model_name, CASE WHEN activate THEN new_version ELSE previous END)
				ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,
					activated_at = CASE WHEN a.version = EXCLUDED.version THEN a.activated_at ELSE pg_catalog.now() END;
			-- preloaded: in shared memory before the switch commits
			IF activate THEN
				PERFORM lfg.warm(model_name, new_version);
			END IF;
		END IF;
	END IF;
	IF keep IS NOT NULL THEN
		pruned := @extschema@.lfg_drop_old(model_name, keep);
		decision := decision || pg_catalog.format('; pruned %s old version%s', pruned,
		                                          CASE WHEN pruned = 1 THEN '' ELSE 's' END);
	END IF;
	INSERT INTO lfg.retrain_log (name, started_at, finished_at, previous_version, new_version,
	                             previous_rmse, new_rmse, tolerance, activated, decision,
	                             train_rows, validation_rows, train_seconds, outcome,
	                             source_fingerprint, pruned)
	VALUES (model_name, started, pg_catalog.clock_timestamp(), previous, new_version,
	        previous_rmse, new_rmse, tolerance, activate, decision, train_rows, validation_rows,
	        extract(epoch FROM trained - started), outcome, fingerprint, pruned);
	RAISE NOTICE 'lfg_retrain "%": %', model_name, decision;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;
COMMENT ON PROCEDURE @extschema@.lfg_retrain(text, text, jsonb, double precision, double precision, boolean, integer, boolean) IS
'train a new version from a table, view or query unless it is unchanged since the newest version, activate it if its validation RMSE is within tolerance of the active version''s, optionally prune to keep versions (doc/operations.md)';

------------------------------------------------------------------------
-- Serving follows the active version
------------------------------------------------------------------------

COMMENT ON FUNCTION @extschema@.lfg_predict(text, bigint, bigint) IS
'predicted rating of item_id by user_id with the active version of a model';

------------------------------------------------------------------------
-- Serving what the model knows: known users, similar items, explanations
-- (doc/serving.md)
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_recommend_user(model_name text, user_id bigint,
	k integer DEFAULT 10, exclude bigint[] DEFAULT NULL, ratings jsonb DEFAULT NULL,
	include bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_user'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_recommend_user(text, bigint, integer, bigint[], jsonb, bigint[]) IS
'top k items for a user the model was trained on, from their stored factors (refined by new ratings when given), best first, scores equal to lfg_predict';

CREATE FUNCTION @extschema@.lfg_similar_items(model_name text, item_id bigint,
	k integer DEFAULT 10, exclude bigint[] DEFAULT NULL, include bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, similarity double precision)
AS 'MODULE_PATHNAME', 'lfg_similar_items'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_similar_items(text, bigint, integer, bigint[], bigint[]) IS
'the k items whose factors are nearest to an item''s by cosine similarity, best first, the item itself left out';

CREATE FUNCTION @extschema@.lfg_item_factors(model_name text, item_id bigint)
RETURNS real[]
AS 'MODULE_PATHNAME', 'lfg_item_factors'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_item_factors(text, bigint) IS
'an item''s latent vector q_i followed by its bias b_i; NULL for an item the model does not know';

CREATE FUNCTION @extschema@.lfg_explain(model_name text, user_ratings jsonb,
	age double precision, gender text, job text, item_id bigint)
RETURNS TABLE (rated_item_id bigint, rating double precision, contribution double precision)
AS 'MODULE_PATHNAME', 'lfg_explain'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION @extschema@.lfg_explain(text, jsonb, double precision, text, text, bigint) IS
'each rated item''s exact share of a new user''s unclipped score of item_id, and one row (NULL rated_item_id) for the rest';

------------------------------------------------------------------------
-- One form per number of arguments, so that drivers that send untyped
-- bind parameters (node-pg, pgx, JDBC) resolve every call shape: the
-- named-model form takes 5 or 6 arguments, the same with the exclude and
-- include filters 7 or 8, the default-model form exactly 4. The 0.1.0
-- forms that shared those numbers are renamed, not dropped, so that views
-- and functions using them keep working: the default-model form with k
-- becomes lfg_recommend_default, the array form lfg_recommend_arrays.
-- The planner is told k rows (lfg_rows_support) and each form's cost.
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_rows_support(internal) RETURNS internal
AS 'MODULE_PATHNAME', 'lfg_rows_support'
LANGUAGE C STRICT;
COMMENT ON FUNCTION @extschema@.lfg_rows_support(internal) IS
'planner support of the top-k functions: the row estimate is their k argument when it is a constant';

ALTER FUNCTION @extschema@.lfg_recommend(jsonb, double precision, text, text, integer)
	RENAME TO lfg_recommend_default;
ALTER FUNCTION @extschema@.lfg_recommend_default(jsonb, double precision, text, text, integer)
	COST 5000 SUPPORT @extschema@.lfg_rows_support;
COMMENT ON FUNCTION @extschema@.lfg_recommend_default(jsonb, double precision, text, text, integer) IS
'top k items for a new user with the default model (lfg.model, or the only model); named lfg_recommend in 0.1.0';
ALTER FUNCTION @extschema@.lfg_recommend(text, bigint[], double precision[], double precision, text, text, integer)
	RENAME TO lfg_recommend_arrays;
ALTER FUNCTION @extschema@.lfg_recommend_arrays(text, bigint[], double precision[], double precision, text, text, integer)
	COST 5000 SUPPORT @extschema@.lfg_rows_support;
COMMENT ON FUNCTION @extschema@.lfg_recommend_arrays(text, bigint[], double precision[], double precision, text, text, integer) IS
'lfg_recommend with the ratings as two arrays (item ids, ratings) instead of jsonb; named lfg_recommend in 0.1.0';
ALTER FUNCTION @extschema@.lfg_recommend(text, jsonb, double precision, text, text, integer)
	COST 5000 SUPPORT @extschema@.lfg_rows_support;

CREATE FUNCTION @extschema@.lfg_recommend(model_name text, user_ratings jsonb,
	age double precision, gender text, job text, k integer, exclude bigint[],
	include bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_filtered'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE COST 5000 ROWS 10
SUPPORT @extschema@.lfg_rows_support;
COMMENT ON FUNCTION @extschema@.lfg_recommend(text, jsonb, double precision, text, text, integer, bigint[], bigint[]) IS
'lfg_recommend with filters: never an item of exclude, only items of include when it is not NULL; model_name NULL is the default model';

CREATE FUNCTION @extschema@.lfg_recommend(user_ratings jsonb,
	age double precision, gender text, job text)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_jsonb_default'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE COST 5000 ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_recommend(jsonb, double precision, text, text) IS
'top 10 items for a new user with the default model (lfg.model, or the only model); lfg_recommend_default takes a k';

ALTER FUNCTION @extschema@.lfg_recommend_user(text, bigint, integer, bigint[], jsonb, bigint[])
	COST 2000 SUPPORT @extschema@.lfg_rows_support;
ALTER FUNCTION @extschema@.lfg_similar_items(text, bigint, integer, bigint[], bigint[])
	COST 2000 SUPPORT @extschema@.lfg_rows_support;
ALTER FUNCTION @extschema@.lfg_explain(text, jsonb, double precision, text, text, bigint) COST 5000;
ALTER FUNCTION @extschema@.lfg_item_factors(text, bigint) COST 20;
ALTER FUNCTION @extschema@.lfg_predict(text, bigint, bigint) COST 20;
ALTER FUNCTION @extschema@.lfg_predict(text, integer, bigint, bigint) COST 20;
ALTER FUNCTION @extschema@.lfg_predict(text, jsonb, double precision, text, text, bigint[]) COST 5000;

-- Warming and the model cache (doc/serving.md, "One copy for all backends")
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_load(model_name text, version integer DEFAULT NULL) RETURNS integer
AS 'MODULE_PATHNAME', 'lfg_load'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.lfg_load(text, integer) IS
'read, check and lay out a model version (NULL: the active one) for serving ahead of traffic: in shared memory under shared_preload_libraries, else in this backend; returns the version';

CREATE FUNCTION @extschema@.lfg_cached_models(OUT model text, OUT version integer, OUT held_in text,
	OUT state text, OUT bytes bigint, OUT backends integer, OUT loaded_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lfg_cached_models'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_cached_models() IS
'decoded models of this database in shared memory (held_in shared, with the backends using each) and this backend''s private ones (held_in backend), with when each was loaded';

CREATE VIEW lfg.cache AS SELECT * FROM @extschema@.lfg_cached_models();
COMMENT ON VIEW lfg.cache IS
'decoded models held for serving: shared by all backends (shared_preload_libraries = ''lfg'') or private to this backend';

-- Called by lfg_activate and lfg_retrain before they commit a switch: with
-- shared_preload_libraries = 'lfg' the version is then in shared memory
-- when the first statement after the commit needs it (its row's identity,
-- xmin included, is the one that statement will see). Without preloading
-- nothing is loaded: each backend loads its own copy on first use. A
-- failure (e.g. a model larger than lfg.shared_cache_size) is reported as
-- a WARNING and never undoes the switch.
CREATE FUNCTION lfg.warm(model_name text, version integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF pg_catalog.current_setting('lfg.shared_cache_size', true) IS NULL THEN
		RETURN false;
	END IF;
	PERFORM @extschema@.lfg_load(model_name, version);
	RETURN true;
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'version % of model "%" was not loaded into shared memory ahead of traffic: %',
		version, model_name, SQLERRM
		USING HINT = 'The first call that needs it loads it; lfg_load(name, version) shows the error.';
	RETURN false;
END
$$;
COMMENT ON FUNCTION lfg.warm(text, integer) IS
'with lfg preloaded: load a version into shared memory before a switch to it commits (lfg_activate, lfg_retrain); false when not loaded';

CREATE FUNCTION @extschema@.lfg_progress(OUT pid integer, OUT phase text, OUT rows_read bigint,
	OUT epoch integer, OUT epochs integer, OUT train_rmse double precision,
	OUT validation_rmse double precision, OUT started timestamptz, OUT updated timestamptz,
	OUT seconds double precision, OUT eta_seconds double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lfg_progress'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 2;
COMMENT ON FUNCTION @extschema@.lfg_progress() IS
'the lfg_fit calls running in this database (of the current role, or all with pg_read_all_stats): phase, rows read, epoch of how many, training and validation RMSE, seconds so far and to the last epoch; needs lfg in shared_preload_libraries';

------------------------------------------------------------------------
-- lfg_model_info lists an lfg model's demographics
------------------------------------------------------------------------

-- a new OUT column changes the result type: drop and create (the fill
-- trigger looks the function up when it runs)
DROP FUNCTION @extschema@.lfg_model_info(bytea);
CREATE FUNCTION @extschema@.lfg_model_info(model bytea,
	OUT kind text, OUT n_users int, OUT n_items int, OUT factors int,
	OUT bytes bigint, OUT options jsonb, OUT metrics jsonb, OUT demographics jsonb)
RETURNS record AS 'MODULE_PATHNAME', 'lfg_model_info'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_model_info(bytea) IS
'check model bytes (magic, version, lengths, CRC32C) and describe the model; demographics (lfg models): whether they are used, the genders, the jobs and the training age range';

------------------------------------------------------------------------
-- Ranking metrics (binary relevance; doc/reference.md)
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_precision_at_k(recommended bigint[], relevant bigint[], k int)
RETURNS double precision AS 'MODULE_PATHNAME', 'lfg_precision_at_k'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_precision_at_k(bigint[], bigint[], int) IS
'relevant items among the first k recommended, divided by k (a repeated item counts once)';

CREATE FUNCTION @extschema@.lfg_recall_at_k(recommended bigint[], relevant bigint[], k int)
RETURNS double precision AS 'MODULE_PATHNAME', 'lfg_recall_at_k'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_recall_at_k(bigint[], bigint[], int) IS
'relevant items among the first k recommended, divided by the number of distinct relevant items (0 when there are none)';

CREATE FUNCTION @extschema@.lfg_ndcg_at_k(recommended bigint[], relevant bigint[], k int)
RETURNS double precision AS 'MODULE_PATHNAME', 'lfg_ndcg_at_k'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_ndcg_at_k(bigint[], bigint[], int) IS
'normalised discounted cumulative gain at k: binary gains, log2 discount, ideal DCG over min(k, |relevant|) hits (0 when nothing is relevant)';
