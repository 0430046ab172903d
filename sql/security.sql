-- The backend's model cache answers only what a fresh read of lfg.models
-- would: the current role's rights and row-level security are checked on
-- every use, and the caller's search_path never picks our operators.
CREATE TABLE sec_ratings AS SELECT * FROM lfg_synthetic_ratings(120, 60, 2400, 11);
INSERT INTO lfg.models (name, model)
SELECT 'sec', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 4, "seed": 1}') FROM sec_ratings;
INSERT INTO lfg.models (name, model)
SELECT 'sec_hidden', lfg_fit(user_id, item_id, rating, '{"kind": "svd", "factors": 4, "seed": 1}') FROM sec_ratings;
CREATE ROLE regress_lfg_nopriv;
CREATE ROLE regress_lfg_rls;
GRANT USAGE ON SCHEMA lfg TO regress_lfg_nopriv, regress_lfg_rls;
GRANT SELECT ON lfg.models, lfg.active TO regress_lfg_rls;

-- the superuser loads both models into this backend's cache
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS served,
       lfg_predict('sec_hidden', 1, 1) IS NOT NULL AS served_hidden,
       count(*) AS rows FROM lfg_recommend('sec', '{"1": 5}', NULL::float8, NULL, NULL, 3);

-- a role without SELECT on lfg.models gets nothing from the cache
SET ROLE regress_lfg_nopriv;
SELECT lfg_predict('sec', 1, 1);
SELECT * FROM lfg_recommend('sec', '{"1": 5}', NULL::float8, NULL, NULL, 3);
SELECT lfg_user_factors('sec', '{"1": 5}', NULL, NULL, NULL);
SELECT lfg_predict('sec', 1, 1, 1);
RESET ROLE;
SET SESSION AUTHORIZATION regress_lfg_nopriv;
SELECT lfg_predict('sec', 1, 1);
RESET SESSION AUTHORIZATION;
-- column privileges are enough, as for a fresh read
GRANT SELECT (name, version, model) ON lfg.models TO regress_lfg_nopriv;
GRANT SELECT (name, version) ON lfg.active TO regress_lfg_nopriv;
SET ROLE regress_lfg_nopriv;
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS served_with_columns;
RESET ROLE;
REVOKE SELECT (version) ON lfg.active FROM regress_lfg_nopriv;
SET ROLE regress_lfg_nopriv;
SELECT lfg_predict('sec', 1, 1);
SELECT lfg_predict('sec', 1, 1, 1) BETWEEN 1 AND 5 AS served_by_version;
RESET ROLE;

-- rights that come and go through role membership or schema USAGE are seen
-- by the next call
CREATE ROLE regress_lfg_readers;
GRANT SELECT ON lfg.models, lfg.active TO regress_lfg_readers;
CREATE ROLE regress_lfg_member;
GRANT USAGE ON SCHEMA lfg TO regress_lfg_member;
SET ROLE regress_lfg_member;
SELECT lfg_predict('sec', 1, 1);
RESET ROLE;
GRANT regress_lfg_readers TO regress_lfg_member;
SET ROLE regress_lfg_member;
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS served_through_membership;
RESET ROLE;
REVOKE USAGE ON SCHEMA lfg FROM PUBLIC, regress_lfg_member;
SET ROLE regress_lfg_member;
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS served_without_usage;
RESET ROLE;
GRANT USAGE ON SCHEMA lfg TO PUBLIC;
REVOKE regress_lfg_readers FROM regress_lfg_member;
SET ROLE regress_lfg_member;
SELECT lfg_predict('sec', 1, 1);
RESET ROLE;

-- row-level security hides a model from a role, cached or not
ALTER TABLE lfg.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY sec_visible ON lfg.models FOR SELECT TO regress_lfg_rls USING (name = 'sec');
SET ROLE regress_lfg_rls;
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS visible_served;
SELECT lfg_predict('sec_hidden', 1, 1);
SELECT lfg_predict('sec_hidden', 1, 1, 1);
SELECT * FROM lfg_recommend('sec_hidden', '{"1": 5}', NULL::float8, NULL, NULL, 3);
-- the default model is the only name the role can see
SELECT count(*) AS default_model_rows FROM lfg_recommend_default('{"1": 5}'::jsonb, NULL::float8, NULL, NULL, 3);
RESET ROLE;
SELECT lfg_predict('sec_hidden', 1, 1) IS NOT NULL AS owner_still_served;

-- an operator or function on the caller's search_path never runs inside
-- lfg's lookups (by name, by version, and of the default model)
CREATE SCHEMA regress_lfg_evil;
CREATE FUNCTION regress_lfg_evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN RAISE NOTICE 'the caller''s operator ran'; RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
CREATE OPERATOR regress_lfg_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_lfg_evil.texteq);
CREATE FUNCTION regress_lfg_evil.max(integer) RETURNS integer LANGUAGE plpgsql AS
$$BEGIN RAISE NOTICE 'the caller''s max ran'; RETURN $1; END$$;
GRANT USAGE ON SCHEMA regress_lfg_evil TO regress_lfg_rls;
UPDATE lfg.models SET metrics = metrics WHERE name = 'sec';  -- a change: caches reload
SET ROLE regress_lfg_rls;
SET search_path = regress_lfg_evil, pg_catalog, public;
SELECT lfg_predict('sec', 1, 1) BETWEEN 1 AND 5 AS served_safely,
       lfg_predict('sec', 1, 1, 1) BETWEEN 1 AND 5 AS served_safely_by_version;
SELECT count(*) AS default_model_rows FROM lfg_recommend(NULL, '{"1": 5}'::jsonb, NULL::float8, NULL, NULL, 3);
RESET search_path;
RESET ROLE;
SET search_path = regress_lfg_evil, pg_catalog, public;
SELECT lfg_predict('sec', 1, 2) BETWEEN 1 AND 5 AS superuser_served_safely;
RESET search_path;
DROP SCHEMA regress_lfg_evil CASCADE;
DROP POLICY sec_visible ON lfg.models;
ALTER TABLE lfg.models DISABLE ROW LEVEL SECURITY;

DELETE FROM lfg.models WHERE name LIKE 'sec%';
DROP OWNED BY regress_lfg_nopriv, regress_lfg_rls, regress_lfg_readers, regress_lfg_member;
DROP ROLE regress_lfg_nopriv, regress_lfg_rls, regress_lfg_readers, regress_lfg_member;
DROP TABLE sec_ratings;
