#!/usr/bin/env bash
# Shared by the MovieLens benchmarks that serve new users (newusers.sh,
# ranking.sh): their arguments, the data check, a throwaway cluster when
# PGHOST is unset, and the SQL that loads the ratings and the users.
# Source it, then: lfg_ml_setup NAME DEFAULT_PORT "$@"; it sets check
# (--check), dataset (ml-100k, or ml-1m with --ml1m), data (the directory,
# default ../shared/data/DATASET, checked) and load (SQL creating the tables
# ratings and users in the current schema).

lfg_ml_setup() {
  local name=$1 port=$2
  shift 2
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  check=0
  dataset=ml-100k
  while [ $# -gt 0 ]; do
    case "$1" in
      --check) check=1; shift ;;
      --ml1m) dataset=ml-1m; shift ;;
      *) break ;;
    esac
  done
  data=${1:-$here/../shared/data/$dataset}
  local need
  if [ "$dataset" = ml-100k ]; then
    need=("$data/u.data" "$data/u.user")
  else
    need=("$data/ratings_uir.dat" "$data/users.dat")
  fi
  for f in "${need[@]}"; do
    if [ ! -f "$f" ]; then
      echo "$name: $dataset not found at $data (need ${need[*]##*/}); pass its directory" >&2
      exit 2
    fi
  done
  data=$(cd "$data" && pwd)

  if [ -z "${PGHOST:-}" ]; then
    # shellcheck source=../../scripts/cluster.sh
    source "$here/scripts/cluster.sh"
    lfg_cluster_start "$port"
    trap lfg_cluster_stop EXIT
  fi
  export PGDATABASE=${PGDATABASE:-postgres}

  if [ "$dataset" = ml-100k ]; then
    load="CREATE TABLE ratings (user_id int, item_id int, rating int, ts bigint);
\\copy ratings FROM '$data/u.data'
CREATE TABLE users (user_id int PRIMARY KEY, age int, gender text, job text, zip text);
\\copy users FROM '$data/u.user' (FORMAT csv, DELIMITER '|')"
  else
    load="CREATE TABLE ratings (user_id int, item_id int, rating int);
\\copy ratings FROM PROGRAM 'sed \"s/::/\\t/g\" \"$data/ratings_uir.dat\"'
CREATE TABLE users (user_id int PRIMARY KEY, gender text, age int, job text, zip text);
\\copy users FROM PROGRAM 'sed \"s/::/\\t/g\" \"$data/users.dat\"'"
  fi
}
