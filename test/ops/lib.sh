#!/usr/bin/env bash
# What the operations tests share: source it from test/ops/*.sh after
# `cd` to the repository root, then `ops_start NAME PORT [EXTRA_CONF]`.
#   fail MESSAGE          print "FAIL (test/ops/NAME.sh): MESSAGE" and exit 1
#   q DB ARGS...          psql on database DB, unaligned, stop at the first error
#   check DB DESCR SQL    the query must return exactly 't'
#   ops_on_exit           define it to clean up more before the cluster stops
# On exit the cluster is stopped (and on failure the end of its log printed).
source scripts/cluster.sh

ops_name=
fail() { echo "FAIL (test/ops/$ops_name.sh): $*" >&2; exit 1; }
q() { local db=$1; shift; psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }
check() {
  local got
  got=$(q "$1" -c "$3") || fail "$2: query failed on $1: $3"
  [ "$got" = t ] || fail "$2: expected t, got '$got' on $1 from: $3"
}
ops_cleanup() {
  local rc=$?
  set +e
  declare -F ops_on_exit >/dev/null && ops_on_exit
  if [ $rc -ne 0 ] && [ -n "${LFG_CLUSTER_DIR:-}" ] && [ -f "$LFG_CLUSTER_DIR/server.log" ]; then
    echo "== server.log (tail)" >&2; tail -n 40 "$LFG_CLUSTER_DIR/server.log" >&2
  fi
  lfg_cluster_stop
  exit $rc
}

# ops_start NAME PORT [EXTRA_CONF]: a throwaway cluster with lfg 0.2.0 available
ops_start() {
  ops_name=$1
  trap ops_cleanup EXIT
  trap "exit 1" INT TERM HUP
  LFG_EXTRA_CONF=${3:-} lfg_cluster_start "$2" || fail "cluster did not start"
  export PGOPTIONS="-c client_min_messages=warning"
  [ "$(q postgres -c "SELECT count(*) FROM pg_available_extension_versions WHERE name = 'lfg' AND version = '0.2.0'")" = 1 ] ||
    fail "lfg 0.2.0 is not installed (make install)"
}
