#!/usr/bin/env bash
# Seed spread of LFG: the same data and options trained with several seeds.
#
#   test/bench/seeds.sh [--ml1m] [DATA_DIR]
#
# MovieLens-100k u1 (u1.base, scored on u1.test; DATA_DIR ../shared/data/ml-100k) or,
# with --ml1m, the seeded 90/10 split of test/bench/ml1m.sh (DATA_DIR
# ../shared/data/ml-1m). Trains LFG with demographics for each preset in
# SEEDS_PRESETS (default "paper new_user") and each seed in SEEDS (default
# "1 2 3 4 5"), with SEEDS_OPTIONS (a jsonb object, default {}) merged into
# the options, and prints each run's test RMSE, epochs run, best epoch and
# validation RMSE, then per preset the mean, the spread (max - min) and the
# standard deviation of the test RMSE.
#
# It uses the server that libpq's environment points to, with lfg installed;
# when PGHOST is unset it starts a throwaway cluster.
set -euo pipefail
# the arguments, the data check, the cluster and the ratings and users tables
# of the other MovieLens benchmarks
# shellcheck source=movielens.sh
source "$(dirname "$0")/movielens.sh"
lfg_ml_setup seeds 54336 "$@"
presets=${SEEDS_PRESETS:-paper new_user}
seeds=${SEEDS:-1 2 3 4 5}
extra=${SEEDS_OPTIONS:-'{}'}

if [ "$dataset" = ml-1m ]; then
  load="$load
CREATE TABLE train AS SELECT * FROM ratings WHERE abs(hashint8(user_id::bigint * 100003 + item_id + 20231031)) % 10 <> 0;
CREATE TABLE test AS SELECT * FROM ratings WHERE abs(hashint8(user_id::bigint * 100003 + item_id + 20231031)) % 10 = 0;"
else
  for f in u1.base u1.test; do
    if [ ! -f "$data/$f" ]; then
      echo "seeds: $f not found in $data; pass the ml-100k directory" >&2
      exit 2
    fi
  done
  load="$load
CREATE TABLE train (user_id int, item_id int, rating int, ts bigint);
\\copy train FROM '$data/u1.base'
CREATE TABLE test (user_id int, item_id int, rating int, ts bigint);
\\copy test FROM '$data/u1.test'"
fi

psql -X -q -v ON_ERROR_STOP=1 <<SQL
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS seeds CASCADE;
CREATE SCHEMA seeds;
SET search_path = seeds, public;
$load
ANALYZE train; ANALYZE test; ANALYZE users;
CREATE TABLE runs (preset text, seed int, seconds float8, rmse float8, metrics jsonb);
CREATE PROCEDURE run(preset text, seed int) LANGUAGE plpgsql AS \$\$
DECLARE
  t0 timestamptz := clock_timestamp();
  m bytea;
  secs float8;
  opts jsonb := jsonb_build_object('preset', preset, 'seed', seed) || '$extra'::jsonb;
BEGIN
  SELECT lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job, opts) INTO m
    FROM seeds.train r JOIN seeds.users u USING (user_id);
  secs := extract(epoch FROM clock_timestamp() - t0);
  INSERT INTO lfg.models (name, model) VALUES ('seeds run', m);
  INSERT INTO seeds.runs
    SELECT preset, seed, secs, sqrt(avg((lfg_predict('seeds run', t.user_id, t.item_id) - t.rating) ^ 2)),
           (SELECT metrics FROM lfg.models WHERE name = 'seeds run')
    FROM seeds.test t;
  DELETE FROM lfg.models WHERE name = 'seeds run';
  COMMIT;
END \$\$;
$(for p in $presets; do for s in $seeds; do echo "\\echo 'training preset $p, seed $s'"; echo "CALL run('$p', $s);"; done; done)
\pset footer off
\echo 'options merged: $extra'
SELECT preset, seed, round(rmse::numeric, 4) AS test_rmse, metrics->'epochs_run' AS epochs,
       metrics->'best_epoch' AS best_epoch, round((metrics->>'val_rmse')::numeric, 4) AS val_rmse,
       round(seconds::numeric, 1) AS fit_seconds
  FROM runs ORDER BY preset, seed;
SELECT preset, count(*) AS seeds, round(avg(rmse)::numeric, 4) AS mean_rmse,
       round((max(rmse) - min(rmse))::numeric, 4) AS spread, round(stddev_samp(rmse)::numeric, 4) AS stddev
  FROM runs GROUP BY preset ORDER BY preset;
DROP SCHEMA seeds CASCADE;
SQL
