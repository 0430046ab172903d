#!/usr/bin/env bash
# MovieLens-1m benchmark of lfg: BiasSVD and LFG on a seeded 90/10 split.
#
#   test/bench/ml1m.sh [--check] [DATA_DIR]
#
# DATA_DIR defaults to ../shared/data/ml-1m and must hold ratings_uir.dat
# (UserID::ItemIndex::Rating) and users.dat (UserID::Gender::Age::Occupation::Zip;
# the age is a bucket code and the occupation a code, passed as text). A
# rating is in the test tenth when a seeded hash of (user, item) says so.
# Prints RMSE/MAE on the test tenth, fit times, and LFG's seconds and GFLOP
# per epoch. With --check it exits non-zero unless LFG beats BiasSVD.
#
# It uses the server that libpq's environment points to, with lfg installed;
# when PGHOST is unset it starts a throwaway cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
data=${1:-$here/../shared/data/ml-1m}
if [ ! -f "$data/ratings_uir.dat" ] || [ ! -f "$data/users.dat" ]; then
  echo "ml1m: MovieLens-1m not found at $data (need ratings_uir.dat and users.dat); pass its directory" >&2
  exit 2
fi
data=$(cd "$data" && pwd)

if [ -z "${PGHOST:-}" ]; then
  # shellcheck source=../../scripts/cluster.sh
  source "$here/scripts/cluster.sh"
  lfg_cluster_start 54332
  trap lfg_cluster_stop EXIT
fi
export PGDATABASE=${PGDATABASE:-postgres}

psql -X -q -v ON_ERROR_STOP=1 -v check=$check <<SQL
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS ml1m CASCADE;
CREATE SCHEMA ml1m;
SET search_path = ml1m, public;
CREATE TABLE ratings (user_id int, item_id int, rating int);
\copy ratings FROM PROGRAM 'sed "s/::/\t/g" "$data/ratings_uir.dat"'
CREATE TABLE users (user_id int PRIMARY KEY, gender text, age int, job int, zip text);
\copy users FROM PROGRAM 'sed "s/::/\t/g" "$data/users.dat"'
-- the seeded 90/10 split (seed 20231031)
CREATE TABLE train AS SELECT * FROM ratings WHERE abs(hashint8(user_id::bigint * 100003 + item_id + 20231031)) % 10 <> 0;
CREATE TABLE test AS SELECT * FROM ratings WHERE abs(hashint8(user_id::bigint * 100003 + item_id + 20231031)) % 10 = 0;
ANALYZE train; ANALYZE test; ANALYZE users;
SELECT (SELECT count(*) FROM ratings) AS ratings, (SELECT count(*) FROM train) AS train,
       (SELECT count(*) FROM test) AS test, (SELECT count(*) FROM users) AS users;
CREATE TABLE runs (config text, seconds float8, rmse float8, mae float8, metrics jsonb);

CREATE PROCEDURE run(cfg text, opts jsonb) LANGUAGE plpgsql AS \$\$
DECLARE
  t0 timestamptz := clock_timestamp();
  m bytea;
  secs float8;
  model_name text := 'ml1m ' || cfg;
BEGIN
  IF opts->>'kind' = 'lfg' THEN
    SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job::text, opts) INTO m
      FROM ml1m.train r JOIN ml1m.users u USING (user_id);
  ELSE
    SELECT lfg_fit(user_id, item_id, rating, opts) INTO m FROM ml1m.train;
  END IF;
  secs := extract(epoch FROM clock_timestamp() - t0);
  INSERT INTO lfg.models (name, model) VALUES (model_name, m);
  INSERT INTO ml1m.runs
    SELECT cfg, secs, sqrt(avg((lfg_predict(model_name, t.user_id, t.item_id) - t.rating) ^ 2)),
           avg(abs(lfg_predict(model_name, t.user_id, t.item_id) - t.rating)),
           (SELECT metrics FROM lfg.models WHERE name = model_name)
    FROM ml1m.test t;
  DELETE FROM lfg.models WHERE name = model_name;
  COMMIT;
END
\$\$;
\echo 'Training BiasSVD (seconds) and LFG (a few minutes)'
CALL run('biassvd', '{"kind": "biassvd"}');
CALL run('lfg', '{"kind": "lfg", "preset": "paper"}');
\pset footer off
SELECT config, round(rmse::numeric, 4) AS rmse, round(mae::numeric, 4) AS mae,
       round(seconds::numeric, 2) AS fit_s, metrics->'epochs_run' AS epochs,
       metrics->'seconds_per_epoch' AS s_per_epoch, metrics->'gflop_per_epoch' AS gflop_per_epoch,
       metrics->'gflops' AS gflops
  FROM runs ORDER BY rmse DESC;
SELECT (SELECT rmse FROM runs WHERE config = 'lfg') < (SELECT rmse FROM runs WHERE config = 'biassvd') AS ok \gset
\if :ok
  \echo 'ml1m: LFG is below BiasSVD'
\else
  \echo 'ml1m: LFG is NOT below BiasSVD'
  \if :check
    DO \$\$ BEGIN RAISE EXCEPTION 'ml1m: target missed'; END \$\$;
  \endif
\endif
DROP SCHEMA ml1m CASCADE;
SQL
