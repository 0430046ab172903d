-- Bad input: each gives a clear ERROR with an errcode and a hint
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
\set VERBOSITY default
CREATE TABLE small AS SELECT * FROM lfg_synthetic_ratings(30, 20, 300, 1);

-- ratings that are not finite numbers
SELECT lfg_fit(u, i, r) FROM (VALUES (1, 1, 'NaN'::float8), (1, 2, 3)) v(u, i, r);
SELECT lfg_fit(u, i, r) FROM (VALUES (1, 1, 'Infinity'::float8)) v(u, i, r);
SELECT lfg_fit(u, i, r) FROM (VALUES (1, 1, '-Infinity'::real)) v(u, i, r);
SELECT lfg_fit(u, i, r) FROM (VALUES (1, 1, 1e300::numeric)) v(u, i, r);
SELECT pg_temp.sqlstate($$SELECT lfg_fit(u, i, r) FROM (VALUES (1, 1, 'NaN'::float8)) v(u, i, r)$$);

-- unknown option keys list the valid ones
SELECT lfg_fit(user_id, item_id, rating, '{"factor": 10}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 10, "learning_rate": 0.1}') FROM small;

-- options of the wrong type
SELECT lfg_fit(user_id, item_id, rating, '{"factors": "ten"}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 2.5}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"lr": "fast"}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"kind": 1}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"verbose": "yes"}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"factors": [1]}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '[1, 2]') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '"svd"') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"kind": "als"}') FROM small;

-- options out of range
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 0}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"factors": 100000}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"lr": -0.1}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"lr": 0}') FROM small;
-- a learning rate that makes training diverge: a training error, not corrupt bytes
SELECT lfg_fit(user_id, item_id, rating, '{"lr": 1, "epochs": 50}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"kind": "svd", "lr": 1, "epochs": 50}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"epochs": 1000000}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"epochs": 0}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"reg": -1}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"init_std": 100}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"seed": -1}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"seed": 99999999999999999999}') FROM small;
SELECT pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating, '{"factors": 0}') FROM small$$);

-- options must be the same on every row
SELECT lfg_fit(user_id, item_id, rating, jsonb_build_object('seed', user_id)) FROM small;

-- nothing to train on
SELECT lfg_fit(user_id, item_id, rating) FROM small WHERE false;
SELECT lfg_fit(u, i, r) FROM (VALUES (NULL::int, 1, 3), (2, NULL, 4)) v(u, i, r);
SELECT pg_temp.sqlstate($$SELECT lfg_fit(user_id, item_id, rating) FROM small WHERE false$$);

-- models that do not exist
SELECT lfg_predict('no such model', 1, 1);
SELECT pg_temp.sqlstate($$SELECT lfg_predict('no such model', 1, 1)$$);
INSERT INTO lfg.models (name, model) SELECT 'in', lfg_fit(user_id, item_id, rating, '{"factors": 2}') FROM small;
SELECT lfg_predict('in', 5, 1, 1);
SELECT lfg_predict('in', 0, 1, 1);
SELECT lfg_predict('In', 1, 1);

-- NULL arguments give NULL
SELECT lfg_predict(NULL, 1, 1) IS NULL AS a, lfg_predict('in', NULL, 1) IS NULL AS b,
       lfg_predict('in', 1, NULL) IS NULL AS c, lfg_predict('in', NULL::int, 1, 1) IS NULL AS d;

-- model names
INSERT INTO lfg.models (name, model) SELECT '', lfg_fit(user_id, item_id, rating, '{"factors": 2}') FROM small;
INSERT INTO lfg.models (name, model) VALUES ('nomodel', NULL);

-- synthetic data arguments
SELECT count(*) FROM lfg_synthetic_ratings(0, 10, 10);
SELECT count(*) FROM lfg_synthetic_ratings(10, 10, 1000);
SELECT count(*) FROM lfg_synthetic_ratings(10, 10, 5);

-- the server is unharmed and nothing stored was lost
SELECT name, version, kind FROM lfg.models WHERE name = 'in';
-- warm_start: an object naming a stored model (and optionally its version) with as many factors
SELECT lfg_fit(user_id, item_id, rating, '{"warm_start": "m"}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"warm_start": {"version": 1}}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"warm_start": {"model": "m", "version": 0}}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"warm_start": {"model": "m", "seed": 1}}') FROM small;
SELECT lfg_fit(user_id, item_id, rating, '{"warm_start": {"model": "no_such_model"}}') FROM small;
