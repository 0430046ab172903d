#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the demo, the tests and the benchmarks.
# Source this file, then: lfg_cluster_start [port]; ...; lfg_cluster_stop
# LFG_EXTRA_CONF adds postgresql.conf lines; @SOCKDIR@ in them is the socket
# directory (for pg_cron's cron.host).
# The server runs as the postgres user (PostgreSQL refuses root); clients
# (psql, pg_regress) connect through the socket in $LFG_CLUSTER_DIR.
#
# LFG_AUTH=debian makes a cluster authenticate as one made by Debian's
# pg_createcluster: Debian's pg_hba.conf (peer on the socket, scram-sha-256
# on TCP localhost), listen_addresses = 'localhost', and a password for the
# superuser. Clients then connect over TCP (PGHOST=localhost) with the
# password from $LFG_CLUSTER_DIR/pgpass (PGPASSFILE); lfg_cluster_password
# ROLE PASSWORD gives another role a password and adds it there.

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
  local auth=(--auth=trust) listen=''
  if [ "${LFG_AUTH:-trust}" = debian ]; then
    # the superuser's password, readable by the server's user for initdb
    # and by the client in a pgpass file only it can read
    local pw
    pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$pw" > "$LFG_CLUSTER_DIR/pw"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$LFG_CLUSTER_DIR/pw"
    chmod 600 "$LFG_CLUSTER_DIR/pw"
    (umask 077 && printf 'localhost:%s:*:%s:%s\n' "$port" "$PGUSER" "$pw" > "$LFG_CLUSTER_DIR/pgpass")
    auth=(--auth-local=peer --auth-host=scram-sha-256 --pwfile="$LFG_CLUSTER_DIR/pw")
    listen=localhost
  elif [ "${LFG_AUTH:-trust}" != trust ]; then
    echo "lfg_cluster_start: LFG_AUTH must be trust or debian, not '$LFG_AUTH'" >&2; return 1
  fi
  (cd / && "${as_pg[@]}" "$LFG_PG_BIN/initdb" -D "$LFG_CLUSTER_DIR/data" -U "$PGUSER" \
      --no-sync -E UTF8 --locale=C "${auth[@]}" >/dev/null) || return 1
  rm -f "$LFG_CLUSTER_DIR/pw"
  if [ -n "$listen" ]; then
    # what pg_createcluster writes (Debian 12, postgresql-common 248)
    cat > "$LFG_CLUSTER_DIR/data/pg_hba.conf" <<'HBA'
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
HBA
    export PGHOST=localhost PGPASSFILE=$LFG_CLUSTER_DIR/pgpass
  fi
  cat >> "$LFG_CLUSTER_DIR/data/postgresql.conf" <<CONF
listen_addresses = '$listen'
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
  # the server does not inherit the clients' libpq settings (a server started
  # by the system has none): its own connections, such as dblink's in the
  # tests, must name their port and host
  (cd / && env -u PGHOST -u PGPORT -u PGUSER -u PGPASSFILE -u PGDATABASE OPENBLAS_NUM_THREADS=1 \
      ${coretype:+OPENBLAS_CORETYPE=$coretype} "${as_pg[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" \
      -l "$LFG_CLUSTER_DIR/server.log" -w start >/dev/null) || { cat "$LFG_CLUSTER_DIR/server.log"; return 1; }
  LFG_AS_PG=("${as_pg[@]}")
}

# lfg_cluster_password ROLE PASSWORD: set a role's password (LFG_AUTH=debian)
# and let clients of this shell log in as it with PGUSER=ROLE
lfg_cluster_password() {
  psql -X -qAt -v ON_ERROR_STOP=1 -d postgres -v role="$1" -v pw="$2" >/dev/null <<'SQL' || return 1
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw') \gexec
SQL
  printf 'localhost:%s:*:%s:%s\n' "$PGPORT" "$1" "$2" >> "$LFG_CLUSTER_DIR/pgpass"
}

lfg_cluster_stop() {
  [ -n "${LFG_CLUSTER_DIR:-}" ] && [ -d "$LFG_CLUSTER_DIR" ] || return 0
  (cd / && "${LFG_AS_PG[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1) ||
    (cd / && "${LFG_AS_PG[@]}" "$LFG_PG_BIN/pg_ctl" -D "$LFG_CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1) || true
  rm -rf "$LFG_CLUSTER_DIR"
  [ "${PGPASSFILE:-}" = "$LFG_CLUSTER_DIR/pgpass" ] && unset PGPASSFILE
  LFG_CLUSTER_DIR=
}
