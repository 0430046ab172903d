#!/usr/bin/env bash
# Run every lfg test on this machine: install dependencies (as root on
# Debian 12), build the Debian package and install, smoke-test and remove it,
# build with warnings as errors, run the core unit tests and the decoder
# fuzzing, install, start a throwaway cluster, run pg_regress (make
# installcheck), the operations tests (pg_cron, dump/restore, upgrade: each
# on a cluster of its own), the TAP tests (as postgres) and the benchmarks
# when the MovieLens data is present, then clean up. Exits non-zero on any
# failure. PG_CONFIG chooses the server (default: Debian's PostgreSQL 15).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export LFG_PG_BIN=${LFG_PG_BIN:-$("$PG_CONFIG" --bindir)}

# a stage's header, with the time since the start (where a run's minutes go)
stage() { printf '== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

bash scripts/install-deps.sh --deb

# before `make install`, and removed again: the package and make install
# write the same files
if [ "$(id -u)" = 0 ]; then
  stage "Debian package: pg_buildext build, dpkg install, smoke test, removal"
  bash scripts/deb.sh --test
else
  stage "Debian package: skipped (installing it needs root)"
fi

stage "build (warnings are errors)"
make clean >/dev/null
make COPT="-Werror -DUSE_ASSERT_CHECKING" UNIT_CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror" >/dev/null
stage "core unit tests"
make unitcheck
stage "messages: doc/messages.md and the messages the docs quote, against the sources"
python3 scripts/messages.py --check
stage "model decoder fuzzing (AddressSanitizer, UBSan)"
make fuzzcheck
stage "install"
make install >/dev/null

source scripts/cluster.sh
cleanup() {
  rc=$?
  if [ $rc -ne 0 ] && [ -f "$root/regression.diffs" ]; then
    stage "regression.diffs"; cat "$root/regression.diffs"
  fi
  if [ $rc -ne 0 ] && [ -n "${LFG_CLUSTER_DIR:-}" ] && [ -f "$LFG_CLUSTER_DIR/server.log" ]; then
    stage "server.log (tail)"; tail -n 50 "$LFG_CLUSTER_DIR/server.log"
  fi
  lfg_cluster_stop
  exit $rc
}
trap cleanup EXIT
lfg_cluster_start 54329

stage "pg_regress"
make installcheck

stage "operations: pg_cron retraining, dump/restore, upgrade from 0.1.0"
bash test/ops/run.sh
stage "TAP: retraining under pgbench load, a terminated and a crashed retrain, cache races and privileges"
bash scripts/tap.sh

# Benchmarks on MovieLens when it is beside the repository (never committed).
# --check turns their targets into failures: accuracy (issues 2 and 3),
# new users on ml-100k (issue 4) and the ranking targets met (issue 10).
# The ml-1m new-user run and the latency run report their figures without
# failing (see the closing notes of issue 4).
ml100k=${LFG_ML100K:-$root/../shared/data/ml-100k}
ml1m=${LFG_ML1M:-$root/../shared/data/ml-1m}
if [ -f "$ml100k/u1.base" ]; then
  stage "MovieLens-100k: SVD, BiasSVD, LFG (five folds) and the LFG ablation"
  bash test/bench/ml100k.sh --check "$ml100k"
  stage "MovieLens-100k: new users"
  bash test/bench/newusers.sh --check "$ml100k"
  stage "MovieLens-100k: known users, similar items, explanations (contract checks)"
  bash test/bench/known.sh "$ml100k"
  stage "MovieLens-100k: ranking (P@10, R@20, NDCG@10 of new users' lists)"
  bash test/bench/ranking.sh --check "$ml100k"
else
  stage "MovieLens-100k not found at $ml100k: its benchmarks are skipped"
fi
if [ -f "$ml1m/ratings_uir.dat" ]; then
  stage "MovieLens-1m: BiasSVD and LFG"
  bash test/bench/ml1m.sh --check "$ml1m"
  stage "MovieLens-1m: new users (reported)"
  bash test/bench/newusers.sh --ml1m "$ml1m"
  stage "MovieLens-1m: every known user in one LATERAL query (reported)"
  bash test/bench/batch.sh "$ml1m"
  stage "MovieLens-1m: ranking (the checked methods: preset paper is left out, RANKING_SKIP)"
  RANKING_SKIP=paper bash test/bench/ranking.sh --check --ml1m "$ml1m"
else
  stage "MovieLens-1m not found at $ml1m: its benchmarks are skipped"
fi
# the identical models and the peak memory are checked; the speedup and the
# 10M / 1M time per rating and epoch are reported: other load on a shared
# machine moves them (two CI runs of one tree gave 1.18 and 1.63 for the ratio)
stage "training at scale: 1M and 10M synthetic ratings, 1 and 2 threads (the speedup and the 10M / 1M ratio are reported, not checked: other load defeats them)"
SCALE_SKIP_25M=1 SCALE_MIN_SPEEDUP=0 SCALE_MAX_RATIO=0 bash test/bench/scale.sh --check
stage "serving latency with pgbench (reported)"
bash test/bench/latency.sh "$ml1m"
stage "serving latency with lfg in shared_preload_libraries: one shared copy of the model (reported)"
(unset PGHOST PGPORT; bash test/bench/latency.sh --preload "$ml1m")
echo "lfg: all tests passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
