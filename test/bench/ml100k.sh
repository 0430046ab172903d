#!/usr/bin/env bash
# MovieLens-100k accuracy and training-speed benchmark of lfg's SVD and BiasSVD.
#
#   test/bench/ml100k.sh [--check] [DATA_DIR]
#
# DATA_DIR defaults to ../shared/data/ml-100k (beside the repository). The
# script trains on each canonical fold u1.base..u5.base, scores u1.test..
# u5.test with lfg_predict, and prints per-fold and mean RMSE/MAE and the
# median training time per fold, beside the time of a plain scan aggregate
# over the same fold measured in the same run (the floor). With --check it
# exits non-zero when an accuracy or speed target is missed.
#
# It uses the server that libpq's environment (PGHOST, PGPORT, ...) points
# to, with lfg installed; when PGHOST is unset it starts a throwaway cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
data=${1:-$here/../shared/data/ml-100k}
if [ ! -f "$data/u1.base" ]; then
  echo "ml100k: MovieLens-100k not found at $data (need u1.base..u5.test); pass its directory" >&2
  exit 2
fi
data=$(cd "$data" && pwd)

if [ -z "${PGHOST:-}" ]; then
  # shellcheck source=../../scripts/cluster.sh
  source "$here/scripts/cluster.sh"
  lfg_cluster_start 54331
  trap lfg_cluster_stop EXIT
fi
export PGDATABASE=${PGDATABASE:-postgres}

psql -X -q -v ON_ERROR_STOP=1 -v check=$check <<SQL
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS ml100k CASCADE;
CREATE SCHEMA ml100k;
SET search_path = ml100k, public;
-- one partition per fold: a fold's scan reads only its own 80,000 rows
CREATE TABLE base (fold int, user_id int, item_id int, rating int, ts bigint) PARTITION BY LIST (fold);
$(for k in 1 2 3 4 5; do echo "CREATE TABLE base_u$k PARTITION OF base FOR VALUES IN ($k);"; done)
CREATE TABLE test (fold int, user_id int, item_id int, rating int, ts bigint);
CREATE TEMP TABLE raw (user_id int, item_id int, rating int, ts bigint);
$(for k in 1 2 3 4 5; do
  echo "TRUNCATE raw; \\copy raw FROM '$data/u$k.base'"
  echo "INSERT INTO base SELECT $k, * FROM raw;"
  echo "TRUNCATE raw; \\copy raw FROM '$data/u$k.test'"
  echo "INSERT INTO test SELECT $k, * FROM raw;"
done)
ANALYZE base; ANALYZE test;
CREATE TABLE runs (config text, fold int, seconds float8, floor_seconds float8, rmse float8, mae float8);

-- Train every configuration on every fold; time the aggregate alone, and the
-- floor (a plain aggregate over the same rows) right before it.
DO \$\$
DECLARE
  cfg record;
  k int;
  t0 timestamptz;
  secs float8;
  floor_secs float8;
  m bytea;
  dummy float8;
  times float8[];
  rep int;
BEGIN
  FOR cfg IN SELECT * FROM (VALUES
      ('svd', '{"kind": "svd"}'::jsonb),
      ('biassvd', '{}'::jsonb),
      ('biassvd tuned', '{"factors": 200, "epochs": 50, "lr": 0.01, "reg": 0.1}'::jsonb)) c(name, opts)
  LOOP
    FOR k IN 1..5 LOOP
      t0 := clock_timestamp();
      SELECT avg(rating + user_id * 0 + item_id * 0) INTO dummy FROM base WHERE fold = k;
      floor_secs := extract(epoch FROM clock_timestamp() - t0);
      -- the median of three fits (one for the slow tuned configuration)
      times := '{}';
      FOR rep IN 1..CASE WHEN cfg.name = 'biassvd tuned' THEN 1 ELSE 3 END LOOP
        t0 := clock_timestamp();
        SELECT lfg_fit(user_id, item_id, rating, cfg.opts) INTO m FROM base WHERE fold = k;
        times := times || extract(epoch FROM clock_timestamp() - t0)::float8;
      END LOOP;
      SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO secs FROM unnest(times) x;
      INSERT INTO lfg.models (name, model) VALUES (format('ml100k %s u%s', cfg.name, k), m);
      INSERT INTO ml100k.runs
        SELECT cfg.name, k, secs, floor_secs,
               sqrt(avg((lfg_predict(format('ml100k %s u%s', cfg.name, k), t.user_id, t.item_id) - t.rating) ^ 2)),
               avg(abs(lfg_predict(format('ml100k %s u%s', cfg.name, k), t.user_id, t.item_id) - t.rating))
        FROM ml100k.test t WHERE t.fold = k;
    END LOOP;
  END LOOP;
END
\$\$;

\pset footer off
\echo
\echo 'Per fold (test on uK.test; fit_s = lfg_fit aggregate inside the database, median of 3 runs)'
SELECT config, 'u' || fold AS fold, round(rmse::numeric, 4) AS rmse, round(mae::numeric, 4) AS mae,
       round(seconds::numeric, 3) AS fit_s
  FROM runs ORDER BY config DESC, fold;
\echo 'Mean over the five folds; median fit time per fold, and its ratio to a scan aggregate over the same fold'
SELECT config, round(avg(rmse)::numeric, 4) AS mean_rmse, round(avg(mae)::numeric, 4) AS mean_mae,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) AS median_fit_s,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY floor_seconds)::numeric, 4) AS median_scan_s,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) /
              percentile_cont(0.5) WITHIN GROUP (ORDER BY floor_seconds))::numeric, 1) AS fit_over_scan
  FROM runs GROUP BY config ORDER BY config DESC;

-- Targets (issue 2): Surprise scores 0.938 (SVD, biased), 0.952 (unbiased) and
-- 0.912 (tuned) on these folds. Accuracy is deterministic and must be met.
-- Speed is reported against its 0.15 s target; because the machine is shared
-- and noisy, --check fails on speed only beyond a guard of twice the target.
CREATE TABLE targets (config text, max_rmse float8, target_s float8, guard_s float8);
INSERT INTO targets VALUES ('biassvd', 0.943, 0.15, 0.30), ('svd', 0.957, NULL, NULL),
                           ('biassvd tuned', 0.915, NULL, NULL);
CREATE VIEW verdict AS
  SELECT t.config, round(avg(r.rmse)::numeric, 4) AS mean_rmse, t.max_rmse,
         avg(r.rmse) <= t.max_rmse AS accuracy_met,
         round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds)::numeric, 3) AS median_fit_s,
         t.target_s,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) <= t.target_s AS speed_met,
         coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) <= t.guard_s, true) AS within_guard
    FROM targets t JOIN runs r USING (config) GROUP BY t.config, t.max_rmse, t.target_s, t.guard_s;
\echo 'Targets'
SELECT config, mean_rmse, max_rmse, accuracy_met, median_fit_s, target_s, speed_met
  FROM verdict ORDER BY config DESC;
SELECT count(*) AS failed FROM verdict WHERE NOT accuracy_met OR NOT within_guard \gset
\if :check
  SELECT :failed = 0 AS ok \gset
  \if :ok
    \echo 'ml100k: all targets met'
  \else
    DO \$\$ BEGIN RAISE EXCEPTION 'ml100k: targets missed'; END \$\$;
  \endif
\endif
DELETE FROM lfg.models WHERE name LIKE 'ml100k %';
DROP SCHEMA ml100k CASCADE;
SQL
