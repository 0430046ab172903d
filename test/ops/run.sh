#!/usr/bin/env bash
# The operations tests: retraining from pg_cron, pg_dump/pg_restore, and the
# upgrade from 0.1.0. Each starts and removes its own throwaway cluster
# (ports 54350, 54351, 54352); lfg 0.2.0 must be installed (make install).
# Runs all three, then exits non-zero if any failed.
# Usage: bash test/ops/run.sh [cron|dump_restore|upgrade ...]
set -euo pipefail
cd "$(dirname "$0")/../.."

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(cron dump_restore upgrade)
failed=()
for t in "${tests[@]}"; do
  [ -f "test/ops/$t.sh" ] || { echo "test/ops/run.sh: no test named $t" >&2; exit 2; }
  echo "== ops: $t"
  start=$(date +%s)
  if bash "test/ops/$t.sh"; then
    echo "== ops: $t passed ($(( $(date +%s) - start ))s)"
  else
    echo "== ops: $t FAILED ($(( $(date +%s) - start ))s)"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "ops tests failed: ${failed[*]}" >&2
  exit 1
fi
echo "ops tests passed: ${tests[*]}"
