#!/usr/bin/env bash
# Serving latency of lfg_recommend on an ml-1m-sized model, with pgbench.
#
#   test/bench/latency.sh [--check] [--preload] [ML1M_DIR]
#
# Builds an LFG model (new_user preset, with its ranking head, a few epochs of
# each stage: latency does not depend on how long it trained) on MovieLens-1m when ML1M_DIR (default
# ../shared/data/ml-1m) holds it, else on the project's synthetic ratings at
# 6,040 users x 3,706 items x 1,000,000 ratings. Then pgbench, prepared
# protocol, 1 and 2 clients, in LFG_BENCH_ROUNDS (5) rounds of
# LFG_BENCH_SECONDS (3) s runs (short rounds, so that the median sees more
# of the shared machine's swings):
#   jsonb:  lfg_recommend with 20 ratings in a jsonb bind parameter
#   arrays: the item_ids/ratings array overload, arrays as bind parameters
#   nohead: jsonb on the same model trained without the ranking head
#           (rank_weight 0: one generator pass, lists ordered by Q)
#   floor:  SELECT * FROM generate_series(:base, :base + 9)
# and prints the median TPS, mean latency and ratio to the floor measured in
# the same round, plus the cost of the first call in a fresh backend, and
# test/bench/serve_stages on the same model (one call's compute by stage and
# scoring form, without PostgreSQL). With --check it exits non-zero unless
# the median ratio reaches one third. With --preload its own cluster runs
# with shared_preload_libraries = 'lfg' (one decoded copy of the model in
# shared memory for all backends); the first-call figures then show what a
# fresh backend of a pool pays, and the private memory (RssAnon) a serving
# backend adds, against the per-backend cache of the default mode.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=0
preload=0
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1; shift ;;
    --preload) preload=1; shift ;;
    *) break ;;
  esac
done
data=${1:-$here/../shared/data/ml-1m}
duration=${LFG_BENCH_SECONDS:-3}
PG_BIN=${LFG_PG_BIN:-/usr/lib/postgresql/15/bin}

# shellcheck source=../../scripts/cluster.sh
source "$here/scripts/cluster.sh"
own_cluster=0
if [ -z "${PGHOST:-}" ]; then
  if [ $preload = 1 ]; then
    LFG_EXTRA_CONF="shared_preload_libraries = 'lfg'" lfg_cluster_start 54334
  else
    lfg_cluster_start 54334
  fi
  own_cluster=1
fi
mode=$(psql -X -At -d postgres -c "SELECT CASE WHEN current_setting('shared_preload_libraries') ~ '(^|[ ,])lfg($|[ ,])'
  THEN 'preloaded: one shared copy of each model' ELSE 'not preloaded: a decoded copy per backend' END")
export PGDATABASE=${PGDATABASE:-postgres}
work=$(mktemp -d)
trap 'rm -rf "$work"; [ $own_cluster = 0 ] || lfg_cluster_stop' EXIT

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
  18 + u % 40 AS age, (u % 21)::text AS job FROM generate_series(1, 6040) u;
ALTER TABLE lat_users ADD PRIMARY KEY (user_id);"
fi
echo "latency: model on $source_name; server $mode"
psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP TABLE IF EXISTS lat_ratings, lat_users;
DELETE FROM lfg.models WHERE name IN ('lat', 'lat0');
$load
INSERT INTO lfg.models (name, model)
  SELECT 'lat', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                        '{"preset": "new_user", "epochs": 3, "patience": 0, "rank_epochs": 3}')
  FROM lat_ratings r JOIN lat_users u USING (user_id);
INSERT INTO lfg.models (name, model)
  SELECT 'lat0', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                         '{"preset": "new_user", "epochs": 3, "patience": 0, "rank_weight": 0}')
  FROM lat_ratings r JOIN lat_users u USING (user_id);
SELECT name, kind, metrics->'users' AS users, metrics->'items' AS items, pg_size_pretty(length(model)::bigint) AS size
  FROM lfg.models WHERE name IN ('lat', 'lat0') ORDER BY name;
SQL

# What an application sends: the user's ratings as bind parameters, as a
# driver does (jsonb text, or two arrays). Eight users with 20 ratings each
# of items the model knows, chosen by a hash; pgbench picks one of the eight
# scripts per transaction and a random age, so no two calls in a row are
# the same. The floor sends one bind parameter and returns 10 rows.
defs=()
for v in 0 1 2 3 4 5 6 7; do
  row=$(psql -X -At -F '|' -c "
    SELECT '{' || string_agg(item_id::text, ',' ORDER BY h) || '}',
           '{' || string_agg((1 + j % 5)::text, ',' ORDER BY h) || '}',
           '{' || string_agg('\"' || item_id || '\": ' || (1 + j % 5), ', ' ORDER BY h) || '}'
      FROM (SELECT item_id, h, row_number() OVER (ORDER BY h) - 1 AS j
              FROM (SELECT DISTINCT item_id, hashint8(item_id::bigint * 8 + $v) AS h FROM lat_ratings) d
             ORDER BY h LIMIT 20) s")
  IFS='|' read -r ids vals obj <<< "$row"
  defs+=(-D "ids$v=$ids" -D "vals$v=$vals" -D "obj$v=$obj")
  cat > "$work/jsonb$v.sql" <<EOS
\\set age random(18, 56)
SELECT * FROM lfg_recommend('lat', :obj$v::jsonb, :age, 'M', '4', 10);
EOS
  cat > "$work/nohead$v.sql" <<EOS
\\set age random(18, 56)
SELECT * FROM lfg_recommend('lat0', :obj$v::jsonb, :age, 'M', '4', 10);
EOS
  cat > "$work/arrays$v.sql" <<EOS
\\set age random(18, 56)
SELECT * FROM lfg_recommend_arrays('lat', :ids$v::bigint[], :vals$v::float8[], :age, 'M', '4', 10);
EOS
done
cat > "$work/floor.sql" <<EOS
\\set base random(0, 3705)
SELECT * FROM generate_series(:base, :base + 9);
EOS

# rounds of floor, jsonb and arrays back to back at each client count: the
# ratio is taken within a round, then the median over the rounds
rounds=${LFG_BENCH_ROUNDS:-5}
results="$work/results.tsv"
: > "$results"
for round in $(seq 1 "$rounds"); do
  for clients in 1 2; do
    for script in floor jsonb arrays nohead; do
      files=(-f "$work/floor.sql")
      [ "$script" = floor ] || files=($(for v in 0 1 2 3 4 5 6 7; do echo -f "$work/$script$v.sql"; done))
      out=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$duration" "${defs[@]}" "${files[@]}" 2>&1) ||
        { echo "$out"; exit 1; }
      tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
      lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
      failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$clients" "$script" "$tps" "$lat" "${failed:-0}" >> "$results"
    done
  done
done

# the first call in a fresh backend (library load and model decode, or the
# attachment to the shared copy) and the second, each timed around the call
# alone, in 5 fresh backends, with the backend's private memory (RssAnon)
# before the first call and after the second; and, in 5 other fresh
# backends, the same for a floor that reads a table too (10 rows of
# lat_users by primary key): PostgreSQL's own cost of a first statement
# (catalog caches, the table's and index's descriptors, first touches of
# shared memory), the part of a first call no extension can avoid
first=()
floor_first=()
for j in 1 2 3 4 5; do
  first+=("$(psql -X -At <<SQL | tail -1
SELECT pg_backend_pid() \g $work/pid
\! awk '/RssAnon/ {print \$2}' /proc/\$(cat $work/pid)/status > $work/rss0
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM lfg_recommend('lat', '{"1": 5, "50": 4}', 30, 'M', '4', 10);
SELECT clock_timestamp() AS t1 \gset
SELECT count(*) FROM lfg_recommend('lat', '{"1": 5, "51": 4}', 30, 'M', '4', 10);
SELECT clock_timestamp() AS t2 \gset
\! awk -v r0=\$(cat $work/rss0) '/RssAnon/ {print \$2 - r0}' /proc/\$(cat $work/pid)/status > $work/rss1
\set rss \`cat $work/rss1\`
SELECT round(1000 * extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz), 1)::text || ' ' ||
       round(1000 * extract(epoch FROM :'t2'::timestamptz - :'t1'::timestamptz), 3)::text || ' ' || :'rss';
SQL
)")
  floor_first+=("$(psql -X -At <<SQL | tail -1
SELECT pg_backend_pid() \g $work/pid
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM lat_users WHERE user_id BETWEEN 1 AND 10;
SELECT clock_timestamp() AS t1 \gset
SELECT count(*) FROM lat_users WHERE user_id BETWEEN 11 AND 20;
SELECT clock_timestamp() AS t2 \gset
SELECT round(1000 * extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz), 1)::text || ' ' ||
       round(1000 * extract(epoch FROM :'t2'::timestamptz - :'t1'::timestamptz), 3)::text || ' 0';
SQL
)")
done

echo
echo "pgbench -M prepared, ${duration} s per run, $rounds rounds; medians over the rounds;"
echo "ratio = TPS / floor TPS at the same client count in the same round"
printf '%-8s %-8s %12s %14s %8s %8s\n' clients script tps latency_ms ratio failed
awk -F'\t' '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] + 0 < a[j - 1] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { tps[$1, $2, $3] = $4; lat[$2, $3] = lat[$2, $3] " " $5; fl[$2, $3] += $6; if ($1 > rounds) rounds = $1 }
  END {
    n = split("floor jsonb arrays nohead", s, " ")
    for (c = 1; c <= 2; c++) for (i = 1; i <= n; i++) {
      t = ""; r = ""
      for (k = 1; k <= rounds; k++) { t = t " " tps[k, c, s[i]]; r = r " " tps[k, c, s[i]] / tps[k, c, "floor"] }
      printf "%-8s %-8s %12.0f %14.3f %8.2f %8d\n", c, s[i], median(t), median(lat[c, s[i]]), median(r), fl[c, s[i]]
      if (s[i] != "floor" && (median(r) < 1 / 3 || fl[c, s[i]] > 0)) bad++
    }
    print bad + 0 > "/dev/stderr"
  }' "$results" 2> "$work/bad"
model_kb=$(psql -X -At -c "SELECT octet_length(model) / 1024 FROM lfg.models WHERE name = 'lat'")
printf '%s\n' "${first[@]}" | awk -v mode="$mode" -v model_kb="$model_kb" '
  function median(x, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j] + 0 < x[j - 1] + 0; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  { a[NR] = $1; b[NR] = $2; r[NR] = $3; q[NR] = $1 / ($2 > 0 ? $2 : 1) }
  END {
    printf "fresh backend (%s): first call %s ms, second call %s ms, ratio %.0f (each with one psql round trip); private memory +%s kB for a %s kB model (medians of %d backends)\n", mode, median(a, NR), median(b, NR), median(q, NR), median(r, NR), model_kb, NR }'
printf '%s\n' "${floor_first[@]}" | awk '
  function median(x, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j] + 0 < x[j - 1] + 0; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  { a[NR] = $1; b[NR] = $2; q[NR] = $1 / ($2 > 0 ? $2 : 1) }
  END {
    printf "fresh backend, the floor (10 rows of a table by primary key): first %s ms, second %s ms, ratio %.0f (medians of %d backends)\n", median(a, NR), median(b, NR), median(q, NR), NR }'
# one call's compute by stage, on the same model's bytes
psql -X -At -c "SELECT encode(model, 'base64') FROM lfg.models WHERE name = 'lat'" |
  base64 -d > "$work/model.bin"
make -s -C "$here" test/bench/serve_stages >/dev/null
echo
coretype=$(lfg_openblas_coretype)
env OPENBLAS_NUM_THREADS=1 ${coretype:+OPENBLAS_CORETYPE=$coretype} "$here/test/bench/serve_stages" "$work/model.bin" 5000 20 |
  sed "s|$work/model.bin|serve_stages on the model|"
psql -X -q -c "DELETE FROM lfg.models WHERE name IN ('lat', 'lat0'); DROP TABLE lat_ratings, lat_users;"

bad=$(cat "$work/bad")
if [ "$bad" -gt 0 ]; then
  echo "latency: lfg_recommend is below a third of the floor's TPS (or failed) in $bad of the 6 cases"
  [ $check -eq 1 ] && exit 3
else
  echo "latency: lfg_recommend reaches at least a third of the floor's TPS at 1 and 2 clients"
fi
exit 0
