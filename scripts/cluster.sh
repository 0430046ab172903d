#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the demo, the tests and the benchmarks.
# Source this file, then: lfg_cluster_start [port]; ...; lfg_cluster_stop
# LFG_EXTRA_CONF adds postgresql.conf lines; @SOCKDIR@ in them is the socket
# directory (for pg_cron's cron.host).
# The server runs as the postgres user (PostgreSQL refuses root); clients
# (psql, pg_regress) connect through the socket in $LFG_CLUSTER_DIR.

LFG_PG_BIN=${LFG_PG_BIN:-/usr/lib/postgresql/15/bin}

# OpenBLAS 0.3.21 does not know recent CPUs and falls back to its slowest
# (Prescott) kernels; where the CPU has AVX2 and FMA, ask for Haswell's
# unless the environment already chose a core type.
lfg_openblas_coretype() {
  if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "$OPENBLAS_CORETYPE"
  elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    echo Haswell
  fi
}

lfg_cluster_start() {
  local port=${1:-54329}
  local extra=${LFG_EXTRA_CONF:-}
  LFG_CLUSTER_DIR=$(mktemp -d /tmp/lfgpg.XXXXXX)
  chmod 755 "$LFG_CLUSTER_DIR"
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$LFG_CLUSTER_DIR"
    as_pg=(runuser -u postgres --)
  fi
  export PGHOST=$LFG_CLUSTER_DIR PGPORT=$port PGUSER=${LFG_PGUSER:-postgres}
  [ "$(id -u)" = 0 ] || PGUSER=$(id -un)
  (cd / && "${as_pg[@]}" "$LFG_PG_BIN/initdb" -D "$LFG_CLUSTER_DIR/data" -U "$PGUSER" \
      --no-sync -E UTF8 --locale=C --auth=trust >/dev/null) || return 1
  cat >> "$LFG_CLUSTER_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$LFG_CLUSTER_DIR'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_parallel_workers_per_gather = 2
${extra//@SOCKDIR@/$LFG_CLUSTER_DIR}
CONF
  local coretype
  coretype=$(lfg_openblas_coretype)
  (cd / && env OPENBLAS_NUM_THREADS=1 ${coretype:+OPENBLAS_CORETYPE=$coretype} "${as_pg[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" \
      -l "$LFG_CLUSTER_DIR/server.log" -w start >/dev/null) || { cat "$LFG_CLUSTER_DIR/server.log"; return 1; }
  LFG_AS_PG=("${as_pg[@]}")
}

lfg_cluster_stop() {
  [ -n "${LFG_CLUSTER_DIR:-}" ] && [ -d "$LFG_CLUSTER_DIR" ] || return 0
  (cd / && "${LFG_AS_PG[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1) ||
    (cd / && "${LFG_AS_PG[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1) || true
  rm -rf "$LFG_CLUSTER_DIR"
  LFG_CLUSTER_DIR=
}
