#!/usr/bin/env bash
# MovieLens-100k benchmark of lfg: accuracy and training speed of SVD,
# BiasSVD (defaults and tuned) and LFG on the canonical folds, and an LFG
# ablation on u1.
#
#   test/bench/ml100k.sh [--check] [--no-ablation] [DATA_DIR]
#
# DATA_DIR defaults to ../shared/data/ml-100k (beside the repository). Each
# configuration trains on u1.base..u5.base and is scored on u1.test..u5.test
# with lfg_predict; the script prints per-fold and mean RMSE/MAE, the median
# fit time per fold beside a plain scan aggregate over the same fold (the
# floor, same run), the backend CPU per fold of a one-thread BiasSVD fit with
# Surprise's defaults (from /proc/PID/schedstat, so the backend must run on
# this machine), and for LFG the median seconds and GFLOP per epoch. The
# ablation retrains LFG on u1 with one switch changed at a time. With --check
# it exits non-zero when a target is missed (see "Targets" below).
#
# It uses the server that libpq's environment (PGHOST, PGPORT, ...) points
# to, with lfg installed; when PGHOST is unset it starts a throwaway cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=0
ablation=1
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1; shift ;;
    --no-ablation) ablation=0; shift ;;
    *) break ;;
  esac
done
data=${1:-$here/../shared/data/ml-100k}
if [ ! -f "$data/u1.base" ] || [ ! -f "$data/u.user" ]; then
  echo "ml100k: MovieLens-100k not found at $data (need u1.base..u5.test and u.user); pass its directory" >&2
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

psql -X -q -v ON_ERROR_STOP=1 -v check=$check -v ablation=$ablation <<SQL
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
CREATE TABLE users (user_id int PRIMARY KEY, age int, gender text, job text, zip text);
\copy users FROM '$data/u.user' (FORMAT csv, DELIMITER '|')
CREATE TEMP TABLE raw (user_id int, item_id int, rating int, ts bigint);
$(for k in 1 2 3 4 5; do
  echo "TRUNCATE raw; \\copy raw FROM '$data/u$k.base'"
  echo "INSERT INTO base SELECT $k, * FROM raw;"
  echo "TRUNCATE raw; \\copy raw FROM '$data/u$k.test'"
  echo "INSERT INTO test SELECT $k, * FROM raw;"
done)
ANALYZE base; ANALYZE test; ANALYZE users;
CREATE TABLE runs (config text, fold int, seconds float8, floor_seconds float8, rmse float8,
                   mae float8, seconds_per_epoch float8, gflop_per_epoch float8, epochs int);

-- Train cfg on fold k (median of reps fits), score it, record the run.
CREATE PROCEDURE run(cfg text, opts jsonb, k int, reps int) LANGUAGE plpgsql AS \$\$
DECLARE
  t0 timestamptz;
  floor_secs float8;
  times float8[] := '{}';
  m bytea;
  dummy float8;
  model_name text := format('ml100k %s u%s', cfg, k);
BEGIN
  t0 := clock_timestamp();
  SELECT avg(rating + user_id * 0 + item_id * 0) INTO dummy FROM ml100k.base WHERE fold = k;
  floor_secs := extract(epoch FROM clock_timestamp() - t0);
  FOR rep IN 1..reps LOOP
    t0 := clock_timestamp();
    IF opts->>'kind' IS NULL OR opts->>'kind' = 'lfg' THEN
      SELECT lfg_fit(b.user_id, b.item_id, b.rating, u.age, u.gender, u.job, opts) INTO m
        FROM ml100k.base b JOIN ml100k.users u USING (user_id) WHERE b.fold = k;
    ELSE
      SELECT lfg_fit(user_id, item_id, rating, opts) INTO m FROM ml100k.base WHERE fold = k;
    END IF;
    times := times || extract(epoch FROM clock_timestamp() - t0)::float8;
  END LOOP;
  INSERT INTO lfg.models (name, model) VALUES (model_name, m);
  INSERT INTO ml100k.runs
    SELECT cfg, k, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x),
           floor_secs,
           sqrt(avg((lfg_predict(model_name, t.user_id, t.item_id) - t.rating) ^ 2)),
           avg(abs(lfg_predict(model_name, t.user_id, t.item_id) - t.rating)),
           (SELECT (metrics->>'seconds_per_epoch')::float8 FROM lfg.models WHERE models.name = model_name),
           (SELECT (metrics->>'gflop_per_epoch')::float8 FROM lfg.models WHERE models.name = model_name),
           (SELECT (metrics->>'epochs_run')::int FROM lfg.models WHERE models.name = model_name)
    FROM ml100k.test t WHERE t.fold = k;
  DELETE FROM lfg.models WHERE models.name = model_name;
  COMMIT;
END
\$\$;

-- Backend CPU of a BiasSVD fit with Surprise's defaults on fold k, on one
-- thread (the model is byte-identical for any "parallel"), read from the
-- backend's /proc/PID/schedstat (nanoseconds on the CPU); the median of reps
-- fits after one that loads what a first call loads, as a Python process
-- has imported its library before it fits.
CREATE TABLE cpu_runs (fold int, cpu_s float8, scan_cpu_s float8);
CREATE FUNCTION backend_cpu() RETURNS float8 LANGUAGE sql AS
  \$\$ SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/schedstat'), ' ', 1)::float8 / 1e9 \$\$;
CREATE PROCEDURE cpu_run(k int, reps int) LANGUAGE plpgsql AS \$\$
DECLARE
  c0 float8;
  cpus float8[] := '{}';
  scans float8[] := '{}';
  n bigint;
  m bytea;
BEGIN
  SELECT lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "parallel": 1}') INTO m FROM ml100k.base WHERE fold = k;
  FOR rep IN 1..reps LOOP
    c0 := ml100k.backend_cpu();
    SELECT count(rating + user_id * 0 + item_id * 0) INTO n FROM ml100k.base WHERE fold = k;
    scans := scans || (ml100k.backend_cpu() - c0);
    c0 := ml100k.backend_cpu();
    SELECT lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "parallel": 1}') INTO m FROM ml100k.base WHERE fold = k;
    cpus := cpus || (ml100k.backend_cpu() - c0);
  END LOOP;
  INSERT INTO ml100k.cpu_runs
    SELECT k, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(cpus) x),
              (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(scans) x);
END
\$\$;

\echo 'Training (about 3 minutes for the folds, 3 more for the ablation)'
$(for k in 1 2 3 4 5; do echo "CALL cpu_run($k, 5);"; done)
CALL run('svd', '{"kind": "svd"}', 1, 3);
CALL run('svd', '{"kind": "svd"}', 2, 3);
CALL run('svd', '{"kind": "svd"}', 3, 3);
CALL run('svd', '{"kind": "svd"}', 4, 3);
CALL run('svd', '{"kind": "svd"}', 5, 3);
CALL run('biassvd', '{"kind": "biassvd"}', 1, 3);
CALL run('biassvd', '{"kind": "biassvd"}', 2, 3);
CALL run('biassvd', '{"kind": "biassvd"}', 3, 3);
CALL run('biassvd', '{"kind": "biassvd"}', 4, 3);
CALL run('biassvd', '{"kind": "biassvd"}', 5, 3);
$(for k in 1 2 3 4 5; do
  echo "CALL run('biassvd tuned', '{\"kind\": \"biassvd\", \"factors\": 200, \"epochs\": 50, \"lr\": 0.01, \"reg\": 0.1}', $k, 1);"
  echo "CALL run('lfg', '{\"kind\": \"lfg\", \"preset\": \"paper\"}', $k, 1);"
done)

\pset footer off
\echo
\echo 'Per fold (test on uK.test; fit_s = lfg_fit inside the database, median of 3 runs for svd/biassvd)'
SELECT config, 'u' || fold AS fold, round(rmse::numeric, 4) AS rmse, round(mae::numeric, 4) AS mae,
       round(seconds::numeric, 3) AS fit_s, epochs
  FROM runs ORDER BY config DESC, fold;
\echo 'Mean over the five folds; median fit time per fold and its ratio to a scan aggregate over the same fold'
SELECT config, round(avg(rmse)::numeric, 4) AS mean_rmse, round(avg(mae)::numeric, 4) AS mean_mae,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3) AS median_fit_s,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY floor_seconds)::numeric, 4) AS median_scan_s,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) /
              percentile_cont(0.5) WITHIN GROUP (ORDER BY floor_seconds))::numeric, 1) AS fit_over_scan
  FROM runs GROUP BY config ORDER BY config DESC;
\echo 'BiasSVD, Surprise''s defaults, one thread: backend CPU per fold of lfg_fit (median of 5 fits after a first one; scan_cpu_s: a scan aggregate over the same rows)'
SELECT 'u' || fold AS fold, round(cpu_s::numeric, 4) AS cpu_s, round(scan_cpu_s::numeric, 4) AS scan_cpu_s
  FROM cpu_runs ORDER BY fold;
\echo 'LFG training speed: median over the folds of seconds and GFLOP per epoch (the FLOP count of forward and backward passes, loss and Adam)'
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_per_epoch)::numeric, 4) AS s_per_epoch,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY gflop_per_epoch)::numeric, 3) AS gflop_per_epoch,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY gflop_per_epoch) /
              percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_per_epoch))::numeric, 2) AS gflops
  FROM runs WHERE config = 'lfg';

\if :ablation
CALL run('ablation: no BatchNorm', '{"batchnorm": false}', 1, 1);
CALL run('ablation: no demographics', '{"aux": false}', 1, 1);
CALL run('ablation: random init', '{"init": "random"}', 1, 1);
CALL run('ablation: mask_prob 0', '{"mask_prob": 0}', 1, 1);
CALL run('ablation: mask_prob 0.1', '{"mask_prob": 0.1}', 1, 1);
CALL run('ablation: frozen item side', '{"train_items": false}', 1, 1);
CALL run('ablation: new_user preset', '{"preset": "new_user"}', 1, 1);
CALL run('ablation: new_user, no episodes', '{"preset": "new_user", "episodes": false}', 1, 1);
\echo 'Ablation on u1: LFG (paper preset: BatchNorm, demographics, SVD init, mask_prob 0.25, joint item side, no episodes) with one change'
SELECT a.config, round(a.rmse::numeric, 4) AS u1_rmse,
       round((a.rmse - p.rmse)::numeric, 4) AS vs_paper_preset, a.epochs
  FROM runs a, runs p WHERE p.config = 'lfg' AND p.fold = 1 AND a.fold = 1
   AND (a.config LIKE 'ablation:%' OR a.config IN ('lfg', 'biassvd'))
  ORDER BY a.rmse;
\endif

-- Targets (issues 2 and 3): Surprise scores 0.938 (SVD, biased), 0.952
-- (unbiased) and 0.912 (tuned) on these folds; LFG must reach 0.916 and be
-- at least 2% below the same run's BiasSVD. Accuracy is deterministic and
-- must be met. Speed is reported against its 0.15 s target; because the
-- machine is shared and noisy, --check fails on speed only beyond a guard of
-- twice the target.
CREATE TABLE targets (config text, max_rmse float8, target_s float8, guard_s float8);
INSERT INTO targets VALUES ('biassvd', 0.943, 0.15, 0.30), ('svd', 0.957, NULL, NULL),
                           ('biassvd tuned', 0.915, NULL, NULL),
                           ('lfg', least(0.916, 0.98 * (SELECT avg(rmse) FROM runs WHERE config = 'biassvd')), NULL, NULL);
CREATE VIEW verdict AS
  SELECT t.config, round(avg(r.rmse)::numeric, 4) AS mean_rmse, round(t.max_rmse::numeric, 4) AS max_rmse,
         avg(r.rmse) <= t.max_rmse AS accuracy_met,
         round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds)::numeric, 3) AS median_fit_s,
         t.target_s,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) <= t.target_s AS speed_met,
         coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) <= t.guard_s, true) AS within_guard
    FROM targets t JOIN runs r USING (config) GROUP BY t.config, t.max_rmse, t.target_s, t.guard_s;
\echo 'Targets (lfg: at most 0.916 and at most 0.98 x this run''s BiasSVD mean)'
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
DROP SCHEMA ml100k CASCADE;
SQL
