#!/usr/bin/env bash
# Batch serving of every known user of MovieLens-1m: throughput of
#   SELECT ... FROM users, LATERAL lfg_recommend_user('m', user_id, 10)
# against the arithmetic lower bound and against one lfg_predict per pair.
#
#   test/bench/batch.sh [ML1M_DIR]
#
# ML1M_DIR defaults to ../shared/data/ml-1m (ratings_uir.dat, users.dat).
# Trains BiasSVD (defaults: 100 factors) and LFG (new_user preset, 64
# factors, 3 epochs of each stage, ranking head included: throughput does not
# depend on how long it trained) on
# every rating, then for each model prints, best of LFG_BENCH_ROUNDS (3):
#   bound       n_users x n_items x k multiply-adds at the sgemm rate that
#               test/bench/batch_compute measures on this machine (one
#               thread, as a backend runs), i.e. P Q^T in one sgemm; it runs
#               before and after the SQL and the faster time is kept (on a
#               shared machine the slower one measured other processes)
#   core        lfg_known_top_k for every user without PostgreSQL
#               (batch_compute: what the SQL call computes)
#   sql         the LATERAL query over all users, count(*) of the rows
#   sql+exclude the same leaving out each user's rated items (an array per
#               user, as an application passes them)
#   predict     one lfg_predict call per (user, item) pair and a sort,
#               ORDER BY ... LIMIT 10 per user, on every tenth user
#   floor       LATERAL generate_series(1, 10) per user: the executor's own
#               cost of 10 rows per user
# as seconds for all users (predict: extrapolated from its tenth), users
# per second and the ratio of the time to the bound's.
# It uses the server in libpq's environment with lfg installed; when PGHOST
# is unset it starts a throwaway cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-1m}
rounds=${LFG_BENCH_ROUNDS:-3}
if [ ! -f "$data/ratings_uir.dat" ] || [ ! -f "$data/users.dat" ]; then
  echo "batch: MovieLens-1m not found at $data (need ratings_uir.dat and users.dat); pass its directory" >&2
  exit 2
fi
data=$(cd "$data" && pwd)

# shellcheck source=../../scripts/cluster.sh
source "$here/scripts/cluster.sh"
own_cluster=0
if [ -z "${PGHOST:-}" ]; then
  lfg_cluster_start 55612
  own_cluster=1
fi
export PGDATABASE=${PGDATABASE:-postgres}
work=$(mktemp -d)
trap 'rm -rf "$work"; [ $own_cluster = 0 ] || lfg_cluster_stop' EXIT
make -s -C "$here" test/bench/batch_compute >/dev/null

psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS batch CASCADE;
CREATE SCHEMA batch;
CREATE TABLE batch.ratings (user_id int, item_id int, rating int);
\copy batch.ratings FROM PROGRAM 'sed "s/::/\t/g" "$data/ratings_uir.dat"'
CREATE TABLE batch.users (user_id bigint PRIMARY KEY, gender text, age int, job text, zip text);
\copy batch.users FROM PROGRAM 'sed "s/::/\t/g" "$data/users.dat"'
CREATE TABLE batch.rated AS SELECT user_id::bigint, array_agg(item_id::bigint) AS items FROM batch.ratings GROUP BY user_id;
CREATE TABLE batch.items AS SELECT DISTINCT item_id::bigint FROM batch.ratings;
ANALYZE batch.ratings; ANALYZE batch.users; ANALYZE batch.rated; ANALYZE batch.items;
DELETE FROM lfg.models WHERE name IN ('batch biassvd', 'batch lfg');
INSERT INTO lfg.models (name, model)
  SELECT 'batch biassvd', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd"}') FROM batch.ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'batch lfg', lfg_fit(r.user_id, r.item_id, r.rating, u.age, u.gender, u.job,
                              '{"preset": "new_user", "factors": 64, "epochs": 3, "patience": 0, "rank_epochs": 3}')
  FROM batch.ratings r JOIN batch.users u USING (user_id);
-- seconds of the best of n runs of a query
CREATE FUNCTION batch.best(q text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE
  t0 timestamptz;
  best float8 := 'Infinity';
BEGIN
  EXECUTE q;					-- warm: the model is decoded and cached
  FOR r IN 1..n LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    best := least(best, extract(epoch FROM clock_timestamp() - t0));
  END LOOP;
  RETURN best;
END \$\$;
CREATE TABLE batch.results (model text, what text, seconds float8, bound float8);
SQL

coretype=$(lfg_openblas_coretype)
# batch_compute's figures (best of $rounds), as shell variables c_NAME
compute() {
  local line
  line=$(env OPENBLAS_NUM_THREADS=1 ${coretype:+OPENBLAS_CORETYPE=$coretype} "$here/test/bench/batch_compute" "$work/$1.model" "$rounds")
  echo "batch $1: $line" >&2
  eval "$(echo "$line" | tr ' ' '\n' | grep -E '^(users|macs|sgemm_s|topk_s)=' | sed 's/^/c_/')"
}
for m in biassvd lfg; do
  psql -X -Atc "SELECT encode(model, 'base64') FROM lfg.models WHERE name = 'batch $m'" | base64 -d > "$work/$m.model"
  # the compute floor before and after the SQL runs, the better of the two:
  # on a shared machine the slower one measured other processes
  compute $m
  sgemm_s=$c_sgemm_s topk_s=$c_topk_s
  psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
INSERT INTO batch.results VALUES
  ('$m', 'sql', batch.best(\$q\$SELECT count(*) FROM batch.users u, LATERAL lfg_recommend_user('batch $m', u.user_id, 10) r\$q\$, $rounds), NULL),
  ('$m', 'sql+exclude', batch.best(\$q\$SELECT count(*) FROM batch.rated d, LATERAL lfg_recommend_user('batch $m', d.user_id, 10, d.items) r\$q\$, $rounds), NULL),
  ('$m', 'predict (1/10 of users, x10)', 10 * batch.best(\$q\$SELECT count(*) FROM batch.users u, LATERAL (SELECT i.item_id FROM batch.items i ORDER BY lfg_predict('batch $m', u.user_id, i.item_id) DESC, i.item_id LIMIT 10) t WHERE u.user_id % 10 = 0\$q\$, 1), NULL),
  ('$m', 'floor (generate_series)', batch.best(\$q\$SELECT count(*) FROM batch.users u, LATERAL generate_series(1, 10) r\$q\$, $rounds), NULL);
SQL
  compute $m
  sgemm_s=$(echo "$sgemm_s $c_sgemm_s" | awk '{print ($1 < $2) ? $1 : $2}')
  topk_s=$(echo "$topk_s $c_topk_s" | awk '{print ($1 < $2) ? $1 : $2}')
  psql -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO batch.results VALUES ('$m', 'bound (sgemm, ' || round(2 * $c_macs / $sgemm_s / 1e9) || ' GFLOP/s)', $sgemm_s, NULL),
  ('$m', 'core (lfg_known_top_k)', $topk_s, NULL);
UPDATE batch.results SET bound = $sgemm_s WHERE model = '$m';
SQL
done

psql -X -q <<'SQL'
\pset footer off
SELECT model, what, round(seconds::numeric, 3) AS seconds,
       round((6040 / seconds)::numeric) AS users_per_s,
       round((seconds / bound)::numeric, 1) AS x_bound
  FROM batch.results ORDER BY model, seconds;
DELETE FROM lfg.models WHERE name IN ('batch biassvd', 'batch lfg');
DROP SCHEMA batch CASCADE;
SQL
