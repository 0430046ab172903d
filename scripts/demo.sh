#!/usr/bin/env bash
# The lfg demo: install what is needed (as root on Debian 12), build and
# install lfg, start a throwaway PostgreSQL cluster, generate the built-in
# seeded synthetic ratings, train a model with the lfg_fit aggregate, predict
# held-out ratings with lfg_predict, and print the results with timings.
#
#   bash scripts/demo.sh [n_users n_items n_ratings]     (default 6040 3706 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-6040}; items=${2:-3706}; ratings=${3:-1000000}

bash scripts/install-deps.sh
echo "== build and install"
make >/dev/null
make install >/dev/null
source scripts/cluster.sh
trap lfg_cluster_stop EXIT
lfg_cluster_start 54328
echo "== throwaway cluster at $PGHOST, port $PGPORT"

psql -X -q -d postgres -v ON_ERROR_STOP=1 -v users="$users" -v items="$items" -v ratings="$ratings" <<'SQL'
\set QUIET on
\pset footer off
CREATE EXTENSION lfg;
\echo == generate :ratings synthetic ratings (:users users x :items items, seed 42)
SELECT clock_timestamp() AS t0 \gset
CREATE TABLE ratings AS
  SELECT * FROM lfg_synthetic_ratings(:users, :items, :ratings, 42);
-- hold out every tenth rating (by a hash) for testing
CREATE TABLE train AS SELECT * FROM ratings WHERE hashint8(user_id * 100003 + item_id) % 10 <> 0;
CREATE TABLE test AS SELECT * FROM ratings WHERE hashint8(user_id * 100003 + item_id) % 10 = 0;
SELECT (SELECT count(*) FROM train) AS train_rows, (SELECT count(*) FROM test) AS test_rows,
       round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS seconds;

\echo == train BiasSVD (100 factors, 20 epochs: the Surprise defaults) with the lfg_fit aggregate
SELECT clock_timestamp() AS t0 \gset
INSERT INTO lfg.models (name, model)
  SELECT 'demo', lfg_fit(user_id, item_id, rating) FROM train;
SELECT name, version, kind, metrics->'users' AS users, metrics->'items' AS items,
       metrics->'train_rmse' AS train_rmse,
       round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS seconds,
       pg_size_pretty(length(model)::bigint) AS model_size
  FROM lfg.models;

\echo == predict the held-out ratings with lfg_predict
SELECT clock_timestamp() AS t0 \gset
CREATE TABLE scored AS
  SELECT rating, lfg_predict('demo', user_id, item_id) AS predicted FROM test;
SELECT count(*) AS predictions,
       round(sqrt(avg((predicted - rating) ^ 2))::numeric, 4) AS rmse,
       round(sqrt(avg(((SELECT avg(rating) FROM train) - rating) ^ 2))::numeric, 4) AS global_mean_rmse,
       round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS seconds,
       round((1e6 * extract(epoch FROM clock_timestamp() - :'t0') / count(*))::numeric, 2) AS us_per_prediction
  FROM scored;

\echo == the top 5 unrated items for user 1, by predicted rating
SELECT i.item_id, round(lfg_predict('demo', 1, i.item_id)::numeric, 3) AS predicted
  FROM generate_series(1, :items) AS i(item_id)
  WHERE NOT EXISTS (SELECT 1 FROM ratings r WHERE r.user_id = 1 AND r.item_id = i.item_id)
  ORDER BY 2 DESC, 1 LIMIT 5;
SQL
echo "== done (the cluster is removed on exit)"
