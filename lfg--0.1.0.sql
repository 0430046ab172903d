/* lfg--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION lfg" to load this file. \quit

-- Functions live in the extension's schema (@extschema@); the model table
-- lives in the schema lfg. Every reference is schema-qualified.
CREATE SCHEMA lfg;
GRANT USAGE ON SCHEMA lfg TO PUBLIC;

------------------------------------------------------------------------
-- Training: the lfg_fit aggregate
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_fit_trans(internal, bigint, bigint, double precision)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_trans' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_trans(internal, bigint, bigint, double precision, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_trans' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_combine(internal, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_combine' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_serial(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'lfg_fit_serial' LANGUAGE C STRICT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_deserial(bytea, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_deserial' LANGUAGE C STRICT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_final(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'lfg_fit_final' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE AGGREGATE @extschema@.lfg_fit(user_id bigint, item_id bigint, rating double precision) (
	SFUNC = @extschema@.lfg_fit_trans,
	STYPE = internal,
	FINALFUNC = @extschema@.lfg_fit_final,
	COMBINEFUNC = @extschema@.lfg_fit_combine,
	SERIALFUNC = @extschema@.lfg_fit_serial,
	DESERIALFUNC = @extschema@.lfg_fit_deserial,
	PARALLEL = SAFE
);

CREATE AGGREGATE @extschema@.lfg_fit(user_id bigint, item_id bigint, rating double precision, options jsonb) (
	SFUNC = @extschema@.lfg_fit_trans,
	STYPE = internal,
	FINALFUNC = @extschema@.lfg_fit_final,
	COMBINEFUNC = @extschema@.lfg_fit_combine,
	SERIALFUNC = @extschema@.lfg_fit_serial,
	DESERIALFUNC = @extschema@.lfg_fit_deserial,
	PARALLEL = SAFE
);

CREATE FUNCTION @extschema@.lfg_fit_trans_demo(internal, bigint, bigint, double precision,
	double precision, text, text)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_trans_demo' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION @extschema@.lfg_fit_trans_demo(internal, bigint, bigint, double precision,
	double precision, text, text, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'lfg_fit_trans_demo' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;

CREATE AGGREGATE @extschema@.lfg_fit(user_id bigint, item_id bigint, rating double precision,
	age double precision, gender text, job text) (
	SFUNC = @extschema@.lfg_fit_trans_demo,
	STYPE = internal,
	FINALFUNC = @extschema@.lfg_fit_final,
	COMBINEFUNC = @extschema@.lfg_fit_combine,
	SERIALFUNC = @extschema@.lfg_fit_serial,
	DESERIALFUNC = @extschema@.lfg_fit_deserial,
	PARALLEL = SAFE
);

CREATE AGGREGATE @extschema@.lfg_fit(user_id bigint, item_id bigint, rating double precision,
	age double precision, gender text, job text, options jsonb) (
	SFUNC = @extschema@.lfg_fit_trans_demo,
	STYPE = internal,
	FINALFUNC = @extschema@.lfg_fit_final,
	COMBINEFUNC = @extschema@.lfg_fit_combine,
	SERIALFUNC = @extschema@.lfg_fit_serial,
	DESERIALFUNC = @extschema@.lfg_fit_deserial,
	PARALLEL = SAFE
);

COMMENT ON AGGREGATE @extschema@.lfg_fit(bigint, bigint, double precision, double precision, text, text) IS
'train an LFG model (paper preset) over ratings joined to the users'' age, gender and job; returns the model bytes';
COMMENT ON AGGREGATE @extschema@.lfg_fit(bigint, bigint, double precision, double precision, text, text, jsonb) IS
'train an LFG, SVD or BiasSVD model over ratings with demographics, with options; returns the model bytes';

COMMENT ON AGGREGATE @extschema@.lfg_fit(bigint, bigint, double precision) IS
'train a BiasSVD model with default options over (user_id, item_id, rating) rows; returns the model bytes';
COMMENT ON AGGREGATE @extschema@.lfg_fit(bigint, bigint, double precision, jsonb) IS
'train an SVD or BiasSVD model over (user_id, item_id, rating) rows with options; returns the model bytes';

------------------------------------------------------------------------
-- Model bytes
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_model_info(model bytea,
	OUT kind text, OUT n_users int, OUT n_items int, OUT factors int,
	OUT bytes bigint, OUT options jsonb, OUT metrics jsonb)
RETURNS record AS 'MODULE_PATHNAME', 'lfg_model_info'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_model_info(bytea) IS
'check model bytes (magic, version, lengths, CRC32C) and describe the model';

CREATE FUNCTION @extschema@.lfg_fit_timing(model bytea)
RETURNS jsonb AS 'MODULE_PATHNAME', 'lfg_fit_timing'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.lfg_fit_timing(bytea) IS
'training time (and, for lfg models, seconds and GFLOP per epoch) if this backend trained the model recently; NULL otherwise';

------------------------------------------------------------------------
-- The model table
------------------------------------------------------------------------

CREATE TABLE lfg.models (
	name text NOT NULL CHECK (name <> '' AND length(name) <= 200),
	version integer NOT NULL CHECK (version > 0),
	kind text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	options jsonb NOT NULL,
	metrics jsonb NOT NULL,
	model bytea NOT NULL,
	PRIMARY KEY (name, version)
);
ALTER TABLE lfg.models ALTER COLUMN model SET STORAGE EXTERNAL;
COMMENT ON TABLE lfg.models IS
'trained lfg models, one row per version; INSERT (name, model) fills the other columns';

-- Fill kind, options and metrics from the bytes (which are checked), and
-- number versions 1, 2, 3... per name unless a version is given (restore).
CREATE FUNCTION lfg.models_fill() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	info record;
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
	NEW.kind := info.kind;
	NEW.options := info.options;
	-- the training time is not part of the bytes (they are deterministic):
	-- take it from the backend that trained the model, or keep the given one
	NEW.metrics := info.metrics || coalesce(@extschema@.lfg_fit_timing(NEW.model),
		pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
			'train_seconds', NEW.metrics->'train_seconds',
			'seconds_per_epoch', NEW.metrics->'seconds_per_epoch',
			'gflop_per_epoch', NEW.metrics->'gflop_per_epoch',
			'gflops', NEW.metrics->'gflops')));
	IF TG_OP = 'INSERT' AND NEW.version IS NULL THEN
		-- serialise version numbering per name until commit
		PERFORM pg_catalog.pg_advisory_xact_lock(4998727, pg_catalog.hashtext(NEW.name));
		SELECT coalesce(max(m.version), 0) + 1 INTO NEW.version
		  FROM lfg.models AS m WHERE m.name = NEW.name;
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER models_fill BEFORE INSERT OR UPDATE ON lfg.models
	FOR EACH ROW EXECUTE FUNCTION lfg.models_fill();

CREATE FUNCTION lfg.models_invalidate() RETURNS trigger
AS 'MODULE_PATHNAME', 'lfg_models_invalidate' LANGUAGE C;

CREATE TRIGGER models_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lfg.models
	FOR EACH STATEMENT EXECUTE FUNCTION lfg.models_invalidate();

SELECT pg_catalog.pg_extension_config_dump('lfg.models', '');

------------------------------------------------------------------------
-- Prediction
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_predict(model_name text, user_id bigint, item_id bigint)
RETURNS double precision AS 'MODULE_PATHNAME', 'lfg_predict'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_predict(text, bigint, bigint) IS
'predicted rating of item_id by user_id with the newest version of a model';

CREATE FUNCTION @extschema@.lfg_predict(model_name text, version integer, user_id bigint, item_id bigint)
RETURNS double precision AS 'MODULE_PATHNAME', 'lfg_predict_version'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_predict(text, integer, bigint, bigint) IS
'predicted rating of item_id by user_id with a given version of a model';

CREATE FUNCTION @extschema@.lfg_build_info() RETURNS jsonb
AS 'MODULE_PATHNAME', 'lfg_build_info' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_build_info() IS
'the model format version and the OpenBLAS kernel family in use (see doc/serving.md)';

------------------------------------------------------------------------
-- Synthetic data
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_synthetic_ratings(n_users integer, n_items integer,
	n_ratings bigint, seed bigint DEFAULT 42)
RETURNS TABLE (user_id bigint, item_id bigint, rating real)
AS 'MODULE_PATHNAME', 'lfg_synthetic_ratings'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100000;
COMMENT ON FUNCTION @extschema@.lfg_synthetic_ratings(integer, integer, bigint, bigint) IS
'seeded synthetic ratings 1..5 with user and item effects and low-rank structure';

------------------------------------------------------------------------
-- Serving users the model has never seen (doc/serving.md)
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lfg_recommend(model_name text, user_ratings jsonb,
	age double precision, gender text, job text, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_jsonb'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_recommend(text, jsonb, double precision, text, text, integer) IS
'top k items for a new user given their ratings {"item id": rating} and demographics, best first';

CREATE FUNCTION @extschema@.lfg_recommend(user_ratings jsonb,
	age double precision, gender text, job text, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_jsonb_default'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_recommend(jsonb, double precision, text, text, integer) IS
'top k items for a new user with the default model (setting lfg.model, or the only model)';

CREATE FUNCTION @extschema@.lfg_recommend(model_name text, item_ids bigint[],
	ratings double precision[], age double precision, gender text, job text, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score double precision)
AS 'MODULE_PATHNAME', 'lfg_recommend_arrays'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.lfg_recommend(text, bigint[], double precision[], double precision, text, text, integer) IS
'top k items for a new user given item ids and ratings as arrays';

-- (no default-model form with arrays: with untyped literals it would make
-- every call ambiguous; pass NULL as model_name for the default model)

CREATE FUNCTION @extschema@.lfg_predict(model_name text, user_ratings jsonb,
	age double precision, gender text, job text, item_ids bigint[])
RETURNS double precision[]
AS 'MODULE_PATHNAME', 'lfg_predict_new_user'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_predict(text, jsonb, double precision, text, text, bigint[]) IS
'predicted ratings of a candidate list of items for a new user';

CREATE FUNCTION @extschema@.lfg_user_factors(model_name text, user_ratings jsonb,
	age double precision, gender text, job text)
RETURNS real[]
AS 'MODULE_PATHNAME', 'lfg_user_factors'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.lfg_user_factors(text, jsonb, double precision, text, text) IS
'a new user''s latent vector p_u followed by the bias b_u (castable to a pgvector vector)';
