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
		PERFORM pg_catalog.pg_advisory_xact_lock(4998727, pg_catalog.hashtext(NEW.name));
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
	PERFORM pg_catalog.pg_advisory_xact_lock(4998729, pg_catalog.hashtext(model_name));
	PERFORM 1 FROM lfg.models AS m WHERE m.name = model_name AND m.version = lfg_activate.version;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'version % of model "%" does not exist', version, model_name
			USING ERRCODE = 'undefined_object',
			      HINT = 'List the versions with SELECT * FROM lfg.model_versions WHERE name = ''' || model_name || '''.';
	END IF;
	previous := @extschema@.lfg_active_version(model_name);
	INSERT INTO lfg.active AS a (name, version) VALUES (model_name, lfg_activate.version)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, activated_at = pg_catalog.now();
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
	PERFORM pg_catalog.pg_advisory_xact_lock(4998729, pg_catalog.hashtext(model_name));
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
	PERFORM pg_catalog.pg_advisory_xact_lock(4998729, pg_catalog.hashtext(model_name));
	DELETE FROM lfg.models AS m
	 WHERE m.name = model_name
	   AND m.version IS DISTINCT FROM @extschema@.lfg_active_version(model_name)
	   AND m.version NOT IN (SELECT k.version FROM lfg.models AS k WHERE k.name = model_name
	                          ORDER BY k.version DESC LIMIT keep);
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
	new_version integer NOT NULL,
	previous_rmse double precision,
	new_rmse double precision,
	tolerance double precision NOT NULL,
	activated boolean NOT NULL,
	decision text NOT NULL,
	train_rows bigint NOT NULL,
	validation_rows bigint NOT NULL,
	train_seconds double precision NOT NULL
);
COMMENT ON TABLE lfg.retrain_log IS
'one row per completed lfg_retrain: both validation RMSEs and whether the new version was activated';
SELECT pg_catalog.pg_extension_config_dump('lfg.retrain_log', '');
SELECT pg_catalog.pg_extension_config_dump('lfg.retrain_log_id_seq', '');

CREATE PROCEDURE @extschema@.lfg_retrain(model_name text, source text, options jsonb DEFAULT NULL,
	tolerance double precision DEFAULT 0.005, validation_fraction double precision DEFAULT 0.05,
	warm_start boolean DEFAULT false)
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
	opts jsonb;
	model_kind text;
	src text;
	holdout text;
	fit text;
	new_version integer;
	previous_rmse double precision;
	new_rmse double precision;
	train_rows bigint;
	validation_rows bigint;
	activate boolean;
	decision text;
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
	-- one retrain of a name at a time: a second one refuses at once
	IF NOT pg_catalog.pg_try_advisory_xact_lock(4998728, pg_catalog.hashtext(model_name)) THEN
		RAISE EXCEPTION 'another lfg_retrain of model "%" is running', model_name
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish (see pg_stat_activity); its result is logged in lfg.retrain_log.';
	END IF;

	previous := @extschema@.lfg_active_version(model_name);
	previous_pin := (SELECT a.version FROM lfg.active AS a WHERE a.name = model_name);
	IF previous IS NOT NULL THEN
		SELECT m.options, m.kind INTO previous_options, previous_kind
		  FROM lfg.models AS m WHERE m.name = model_name AND m.version = previous;
	END IF;
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
	-- start from the active version: its users and items keep their
	-- factors, new ones start fresh (doc/operations.md)
	IF warm_start AND previous IS NOT NULL THEN
		opts := opts || pg_catalog.jsonb_build_object('warm_start',
			pg_catalog.jsonb_build_object('model', model_name, 'version', previous));
	END IF;

	-- the held-out rows: a fixed hash of (user, item), so a rating stays on
	-- its side of the split from one retrain to the next
	holdout := pg_catalog.format('(pg_catalog.hashint8extended(s.item_id::bigint, s.user_id::bigint) '
	                             'OPERATOR(pg_catalog.&) 1048575) OPERATOR(pg_catalog.<) %s',
	                             (validation_fraction * 1048576)::bigint);
	IF model_kind = 'lfg' THEN
		fit := '@extschema@.lfg_fit(s.user_id::bigint, s.item_id::bigint, s.rating::float8, '
		       's.age::float8, s.gender::text, s.job::text, $2)';
	ELSE
		fit := '@extschema@.lfg_fit(s.user_id::bigint, s.item_id::bigint, s.rating::float8, $2)';
	END IF;

	-- the caller's SQL, with the caller's search_path: a table or view name,
	-- or a query
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
	IF pg_catalog.texticregexeq(source, '^\s*\(?\s*(select|with|values|table)\y') THEN
		src := '(' OPERATOR(pg_catalog.||) source OPERATOR(pg_catalog.||) ')';
	ELSE
		src := source::pg_catalog.regclass::pg_catalog.text;
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FILTER (WHERE NOT %1$s), '
	                          'pg_catalog.count(*) FILTER (WHERE %1$s) FROM %2$s AS s', holdout, src)
	   INTO train_rows, validation_rows;
	IF validation_rows OPERATOR(pg_catalog.=) 0 THEN
		RAISE EXCEPTION 'no validation rows among the % rows of the source', train_rows
			USING ERRCODE = 'data_exception',
			      HINT = 'Raise validation_fraction, or train on more ratings.';
	END IF;
	EXECUTE pg_catalog.format('INSERT INTO lfg.models AS m (name, model) SELECT $1, %s FROM %s AS s '
	                          'WHERE NOT %s RETURNING m.version', fit, src, holdout)
	   INTO new_version USING model_name, opts;
	trained := pg_catalog.clock_timestamp();
	-- validation RMSE of the new and of the previously active version, in
	-- one pass over the held-out rows (lfg_predict is strict: no previous
	-- version gives a NULL RMSE)
	EXECUTE pg_catalog.format('SELECT pg_catalog.sqrt(pg_catalog.avg((@extschema@.lfg_predict($1, $2, '
	                          's.user_id::bigint, s.item_id::bigint) OPERATOR(pg_catalog.-) s.rating::float8) '
	                          'OPERATOR(pg_catalog.^) 2)), '
	                          'pg_catalog.sqrt(pg_catalog.avg((@extschema@.lfg_predict($1, $3, '
	                          's.user_id::bigint, s.item_id::bigint) OPERATOR(pg_catalog.-) s.rating::float8) '
	                          'OPERATOR(pg_catalog.^) 2)) FROM %s AS s WHERE %s', src, holdout)
	   INTO new_rmse, previous_rmse USING model_name, new_version, previous;
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

	UPDATE lfg.models AS m
	   SET metrics = m.metrics || pg_catalog.jsonb_build_object('validation_rmse', new_rmse,
	                 'validation_rows', validation_rows, 'validation_fraction', validation_fraction)
	 WHERE m.name = model_name AND m.version = new_version;

	activate := previous IS NULL OR new_rmse <= previous_rmse + tolerance;
	decision := CASE
		WHEN previous IS NULL THEN 'activated: first version'
		WHEN activate THEN format('activated: validation RMSE %s against %s of version %s (tolerance %s)',
		                          round(new_rmse::numeric, 4), round(previous_rmse::numeric, 4), previous, tolerance)
		ELSE format('kept version %s: validation RMSE %s of the new version is worse than %s by more than %s',
		            previous, round(new_rmse::numeric, 4), round(previous_rmse::numeric, 4), tolerance)
	END;
	-- the new version is the newest: without a row in lfg.active it would be
	-- served, so a rejected one pins the previous version. An activation
	-- committed while this one trained (lfg_activate, lfg_rollback) wins.
	PERFORM pg_catalog.pg_advisory_xact_lock(4998729, pg_catalog.hashtext(model_name));
	current_pin := (SELECT a.version FROM lfg.active AS a WHERE a.name = model_name);
	IF current_pin IS DISTINCT FROM previous_pin THEN
		activate := false;
		decision := format('not activated: the active version changed to %s while training '
		                   '(validation RMSE %s against %s of version %s)',
		                   coalesce(current_pin::text, 'the newest'), round(new_rmse::numeric, 4),
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
	END IF;
	INSERT INTO lfg.retrain_log (name, started_at, finished_at, previous_version, new_version,
	                             previous_rmse, new_rmse, tolerance, activated, decision,
	                             train_rows, validation_rows, train_seconds)
	VALUES (model_name, started, pg_catalog.clock_timestamp(), previous, new_version,
	        previous_rmse, new_rmse, tolerance, activate, decision, train_rows, validation_rows,
	        extract(epoch FROM trained - started));
	RAISE NOTICE 'lfg_retrain "%": version % %', model_name, new_version, decision;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;
COMMENT ON PROCEDURE @extschema@.lfg_retrain(text, text, jsonb, double precision, double precision, boolean) IS
'train a new version from a table, view or query, and activate it if its validation RMSE is within tolerance of the active version''s (doc/operations.md)';

------------------------------------------------------------------------
-- Serving follows the active version
------------------------------------------------------------------------

COMMENT ON FUNCTION @extschema@.lfg_predict(text, bigint, bigint) IS
'predicted rating of item_id by user_id with the active version of a model';

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
