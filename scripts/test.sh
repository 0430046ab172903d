#!/usr/bin/env bash
# Run every lfg test on this machine: install dependencies (as root on
# Debian 12), build with warnings as errors, run the core unit tests, install,
# start a throwaway cluster, run pg_regress (make installcheck) and the
# MovieLens-100k accuracy benchmark when the data is present, then clean up.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh

echo "== build (warnings are errors)"
make clean >/dev/null
make COPT="-Werror -DUSE_ASSERT_CHECKING" UNIT_CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror" >/dev/null
echo "== core unit tests"
make unitcheck
echo "== model decoder fuzzing (AddressSanitizer, UBSan)"
make fuzzcheck
echo "== install"
make install >/dev/null

source scripts/cluster.sh
cleanup() {
  rc=$?
  if [ $rc -ne 0 ] && [ -f "$root/regression.diffs" ]; then
    echo "== regression.diffs"; cat "$root/regression.diffs"
  fi
  if [ $rc -ne 0 ] && [ -n "${LFG_CLUSTER_DIR:-}" ] && [ -f "$LFG_CLUSTER_DIR/server.log" ]; then
    echo "== server.log (tail)"; tail -n 50 "$LFG_CLUSTER_DIR/server.log"
  fi
  lfg_cluster_stop
  exit $rc
}
trap cleanup EXIT
lfg_cluster_start 54329

echo "== pg_regress"
make installcheck

data=${LFG_ML100K:-$root/../shared/data/ml-100k}
if [ -f "$data/u1.base" ]; then
  echo "== MovieLens-100k accuracy benchmark"
  bash test/bench/ml100k.sh --check "$data"
else
  echo "== MovieLens-100k not found at $data: accuracy benchmark skipped"
fi
echo "lfg: all tests passed"
