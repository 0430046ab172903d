#!/usr/bin/env bash
# The lfg demo: install what is needed (as root on Debian 12), build and
# install lfg, start a throwaway PostgreSQL cluster, generate the built-in
# seeded synthetic ratings, train BiasSVD and LFG with the lfg_fit aggregate,
# predict held-out ratings, recommend for a new user, and print the results
# with timings.
#
#   bash scripts/demo.sh [n_users n_items n_ratings]     (default 6040 3706 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-6040}; items=${2:-3706}; ratings=${3:-1000000}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export LFG_PG_BIN=${LFG_PG_BIN:-$("$PG_CONFIG" --bindir)}

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

\echo == train LFG (new_user preset, 15 epochs of the rating model and 15 of its ranking head for the demo) over the ratings joined to demographics
CREATE TABLE users AS
  SELECT u AS user_id, 18 + u % 45 AS age, CASE WHEN u % 3 = 0 THEN 'F' ELSE 'M' END AS gender,
         (ARRAY['artist', 'doctor', 'engineer', 'student', 'writer'])[1 + u % 5] AS job
  FROM generate_series(1, :users) u;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO lfg.models (name, model)
  SELECT 'demo_lfg', lfg_fit(t.user_id, t.item_id, t.rating, u.age, u.gender, u.job,
                             '{"preset": "new_user", "epochs": 15, "rank_epochs": 15}')
  FROM train t JOIN users u USING (user_id);
SELECT name, kind, metrics->'val_rmse' AS val_rmse, metrics->'seconds_per_epoch' AS s_per_epoch,
       round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS seconds
  FROM lfg.models WHERE name = 'demo_lfg';

\echo == a new user (never in training) rated 5 items a minute ago: their top 5, from each model
\set new_user '{"1": 5, "2": 4, "3": 1, "10": 5, "25": 3}'
SELECT 'BiasSVD fold-in' AS model, r.* FROM lfg_recommend('demo', :'new_user', 31, 'F', 'writer', 5) r
UNION ALL
SELECT 'LFG', r.* FROM lfg_recommend('demo_lfg', :'new_user', 31, 'F', 'writer', 5) r;
\echo == time per new user (median of 200 calls of lfg_recommend, k = 10)
DO $$
DECLARE t0 timestamptz; us float8[] := '{}'; m text; n int;
BEGIN
  FOREACH m IN ARRAY ARRAY['demo', 'demo_lfg'] LOOP
    us := '{}';
    FOR j IN 1..200 LOOP
      t0 := clock_timestamp();
      SELECT count(*) INTO n FROM lfg_recommend(m, jsonb_build_object(j::text, 5, (j + 7)::text, 3), 30, 'M', 'student', 10);
      us := us || 1e6 * extract(epoch FROM clock_timestamp() - t0)::float8;
    END LOOP;
    RAISE NOTICE '% : % microseconds per new user', rpad(m, 8),
      round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(us) x)::numeric, 1);
  END LOOP;
END $$;
SQL
echo "== done (the cluster is removed on exit)"
