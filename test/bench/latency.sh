#!/usr/bin/env bash
# Serving latency of lfg_recommend on an ml-1m-sized model, with pgbench.
#
#   test/bench/latency.sh [--check] [ML1M_DIR]
#
# Builds an LFG model (new_user preset, a few epochs: latency does not depend
# on how long it trained) on MovieLens-1m when ML1M_DIR (default
# ../shared/data/ml-1m) holds it, else on the project's synthetic ratings at
# 6,040 users x 3,706 items x 1,000,000 ratings. Then pgbench, prepared
# protocol, 1 and 2 clients, 15 s each:
#   jsonb:  lfg_recommend with 20 ratings as a jsonb object
#   arrays: the item_ids/ratings array overload
#   floor:  SELECT * FROM generate_series(:base, :base + 9), same parameters
# and prints TPS, mean latency and the ratio to the floor measured in the
# same run, plus the cost of the first call in a fresh backend. With --check
# it exits non-zero unless lfg_recommend reaches a third of the floor's TPS.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
data=${1:-$here/../shared/data/ml-1m}
duration=${LFG_BENCH_SECONDS:-15}
PG_BIN=${LFG_PG_BIN:-/usr/lib/postgresql/15/bin}

if [ -z "${PGHOST:-}" ]; then
  # shellcheck source=../../scripts/cluster.sh
  source "$here/scripts/cluster.sh"
  lfg_cluster_start 54334
  trap lfg_cluster_stop EXIT
fi
export PGDATABASE=${PGDATABASE:-postgres}
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${LFG_CLUSTER_DIR:-}" ] && lfg_cluster_stop' EXIT

if [ -f "$data/ratings_uir.dat" ] && [ -f "$data/users.dat" ]; then
  source_name="MovieLens-1m"
  load="CREATE TABLE lat_ratings (user_id int, item_id int, rating int);
\\copy lat_ratings FROM PROGRAM 'sed \"s/::/\\t/g\" \"$data/ratings_uir.dat\"'
CREATE TABLE lat_users (user_id int PRIMARY KEY, gender text, age int, job text, zip text);
\\copy lat_users FROM PROGRAM 'sed \"s/::/\\t/g\" \"$data/users.dat\"'"
else
  source_name="synthetic 6040 x 3706 x 1000000 (MovieLens-1m not found at $data)"
  load="CREATE TABLE lat_ratings AS SELECT * FROM lfg_synthetic_ratings(6040, 3706, 1000000, 42);
CREATE TABLE lat_users AS SELECT u AS user_id, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
  18 + u % 40 AS age, (u % 21)::text AS job FROM generate_series(1, 6040) u;"
fi
echo "latency: model on $source_name"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP TABLE IF EXISTS lat_ratings, lat_users;
DELETE FROM lfg.models WHERE name = 'lat';
$load
INSERT INTO lfg.models (name, model)
  SELECT 'lat', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                        '{"preset": "new_user", "epochs": 3, "patience": 0}')
  FROM lat_ratings r JOIN lat_users u USING (user_id);
SELECT name, kind, metrics->'users' AS users, metrics->'items' AS items, pg_size_pretty(length(model)::bigint) AS size
  FROM lfg.models WHERE name = 'lat';
SQL

# 20 distinct items per call: base + 97 j (mod 3706), ratings 1..5
sets="\\set base random(0, 3705)"
items=""; ratings=""; pairs=""
for j in $(seq 0 19); do
  items+="${items:+, }((:base + $((97 * j))) % 3706 + 1)"
  ratings+="${ratings:+, }$((1 + j % 5))"
  pairs+="${pairs:+, }((:base + $((97 * j))) % 3706 + 1)::text, $((1 + j % 5))"
done
cat > "$work/jsonb.sql" <<EOS
$sets
SELECT * FROM lfg_recommend('lat', jsonb_build_object($pairs), 30, 'M', '4', 10);
EOS
cat > "$work/arrays.sql" <<EOS
$sets
SELECT * FROM lfg_recommend('lat', ARRAY[$items]::bigint[], ARRAY[$ratings]::float8[], 30, 'M', '4', 10);
EOS
cat > "$work/floor.sql" <<EOS
$sets
SELECT * FROM generate_series(:base, :base + 9);
EOS

results="$work/results.tsv"
: > "$results"
for clients in 1 2; do
  for script in floor jsonb arrays; do
    out=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$duration" -f "$work/$script.sql" 2>&1) ||
      { echo "$out"; exit 1; }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    printf '%s\t%s\t%s\t%s\t%s\n' "$clients" "$script" "$tps" "$lat" "${failed:-0}" >> "$results"
  done
done

# the first call in a fresh backend (library load and model decode) and the
# second, each timed around the call alone, in 5 fresh backends
first=()
for j in 1 2 3 4 5; do
  first+=("$(psql -X -At <<'SQL' | tail -1
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM lfg_recommend('lat', '{"1": 5, "50": 4}', 30, 'M', '4', 10);
SELECT clock_timestamp() AS t1 \gset
SELECT count(*) FROM lfg_recommend('lat', '{"1": 5, "51": 4}', 30, 'M', '4', 10);
SELECT clock_timestamp() AS t2 \gset
SELECT round(1000 * extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz), 1)::text || ' ' ||
       round(1000 * extract(epoch FROM :'t2'::timestamptz - :'t1'::timestamptz), 3)::text;
SQL
)")
done

echo
echo "pgbench -M prepared, ${duration} s per run; ratio = TPS / floor TPS at the same client count"
printf '%-8s %-8s %12s %14s %8s %8s\n' clients script tps latency_ms ratio failed
awk -F'\t' '{ if ($2 == "floor") f[$1] = $3; tps[$1, $2] = $3; lat[$1, $2] = $4; fl[$1, $2] = $5 }
  END { for (c = 1; c <= 2; c++) { n = split("floor jsonb arrays", s, " ");
          for (i = 1; i <= n; i++) printf "%-8s %-8s %12.0f %14.3f %8.2f %8s\n", c, s[i], tps[c, s[i]],
                 lat[c, s[i]], tps[c, s[i]] / f[c], fl[c, s[i]] } }' "$results"
printf '%s\n' "${first[@]}" | sort -n | awk '{ a[NR] = $1; b[NR] = $2 } END {
  printf "fresh backend: first call %s ms (loads OpenBLAS and decodes the model), second call %s ms, each with one psql round trip (median of %d backends)\n", a[int((NR + 1) / 2)], b[int((NR + 1) / 2)], NR }'
psql -X -q -c "DELETE FROM lfg.models WHERE name = 'lat'; DROP TABLE lat_ratings, lat_users;"

bad=$(awk -F'\t' '{ if ($2 == "floor") f[$1] = $3; else if ($3 < f[$1] / 3 || $5 > 0) bad++ } END { print bad + 0 }' "$results")
if [ "$bad" -gt 0 ]; then
  echo "latency: lfg_recommend is below a third of the floor's TPS (or failed) in $bad runs"
  [ $check -eq 1 ] && exit 3
else
  echo "latency: lfg_recommend reaches at least a third of the floor's TPS at 1 and 2 clients"
fi
exit 0
