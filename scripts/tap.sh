#!/usr/bin/env bash
# Run the TAP tests (test/t/*.pl: retrains under pgbench, a terminated and a
# crashed retrain, cache races and privileges) against the installed lfg (`make install` first; this
# script builds and installs nothing). PostgreSQL::Test::Cluster runs initdb,
# which refuses root: as root, the tests run as postgres from a copy of the
# Makefile and test/t in a temporary directory. Prints the tests' and the
# servers' logs (tmp_check/log) on failure and exits non-zero.
# Usage: bash scripts/tap.sh [prove flags, e.g. --verbose]
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
[ -x "$PG_CONFIG" ] || PG_CONFIG=pg_config

if [ "$(id -u)" = 0 ]; then
  work=$(mktemp -d /tmp/lfgtap.XXXXXX)
  mkdir -p "$work/test"
  cp Makefile "$work/"
  cp -R test/t "$work/test/"
  chown -R postgres:postgres "$work"
  run=(runuser -u postgres --)
else
  work=$(pwd)
  run=()
fi

cleanup() {
  rc=$?
  if [ $rc -ne 0 ] && [ -d "$work/tmp_check/log" ]; then
    for f in "$work"/tmp_check/log/*; do
      [ -f "$f" ] || continue
      echo "== $f"
      cat "$f"
    done
  fi
  # a test killed before its END block leaves its server running: stop it
  for pid in "$work"/tmp_check/t_*_data/pgdata/postmaster.pid; do
    [ -f "$pid" ] || continue
    (cd / && "${run[@]}" "$("$PG_CONFIG" --bindir)/pg_ctl" -D "$(dirname "$pid")" \
        -m immediate -w stop >/dev/null 2>&1) || true
  done
  if [ "$work" != "$(pwd)" ]; then
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

echo "== TAP tests (test/t) as ${run[2]:-$(id -un)}"
(cd / && "${run[@]}" make -C "$work" --no-print-directory prove_installcheck \
    PG_CONFIG="$PG_CONFIG" PROVE_FLAGS="--timer $*")
