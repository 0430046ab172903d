#!/usr/bin/env bash
# The contract of serving what the model knows (issue 11, "Must show"), on
# MovieLens-100k u1 with BiasSVD and LFG. Exits non-zero when a check fails.
#
#   test/bench/known.sh [DATA_DIR]
#
# DATA_DIR defaults to ../shared/data/ml-100k (u1.base, u1.test, u.user).
# Checks, for each model:
#   - lfg_recommend_user(m, u, 10, rated items) for every u1 user: each score
#     equals lfg_predict(m, u, item), no rated item is returned, and the
#     first row is a best unrated item (its score is the maximum of
#     lfg_predict over every unrated item: 1.5 million calls);
#   - lfg_explain: for 100 u1.test users served as new users from their
#     u1.test ratings, over 30 items each, the rows add up to the unclipped
#     score (clipped, lfg_predict's new-user answer, within 1e-4);
#   - lfg_similar_items(m, i, 10) for 200 items: each similarity equals the
#     cosine of the lfg_item_factors vectors (within 1e-9), the item itself
#     is never returned, and the rows are the 10 best cosines.
# It uses the server in libpq's environment with lfg installed; when PGHOST
# is unset it starts a throwaway cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-100k}
if [ ! -f "$data/u1.base" ] || [ ! -f "$data/u1.test" ] || [ ! -f "$data/u.user" ]; then
  echo "known: MovieLens-100k not found at $data (need u1.base, u1.test and u.user); pass its directory" >&2
  exit 2
fi
data=$(cd "$data" && pwd)

if [ -z "${PGHOST:-}" ]; then
  # shellcheck source=../../scripts/cluster.sh
  source "$here/scripts/cluster.sh"
  lfg_cluster_start 55611
  trap lfg_cluster_stop EXIT
fi
export PGDATABASE=${PGDATABASE:-postgres}

psql -X -q -v ON_ERROR_STOP=1 <<SQL
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS known CASCADE;
CREATE SCHEMA known;
SET search_path = known, public;
CREATE TABLE base (user_id int, item_id int, rating int, ts bigint);
\copy base FROM '$data/u1.base'
CREATE TABLE test (user_id int, item_id int, rating int, ts bigint);
\copy test FROM '$data/u1.test'
CREATE TABLE users (user_id int PRIMARY KEY, age int, gender text, job text, zip text);
\copy users FROM '$data/u.user' (FORMAT csv, DELIMITER '|')
CREATE TABLE items AS SELECT DISTINCT item_id FROM base;
CREATE TABLE rated AS SELECT user_id, array_agg(item_id::bigint) AS items FROM base GROUP BY user_id;
DELETE FROM lfg.models WHERE name IN ('known biassvd', 'known lfg');
INSERT INTO lfg.models (name, model)
  SELECT 'known biassvd', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd"}') FROM base;
INSERT INTO lfg.models (name, model)
  SELECT 'known lfg', lfg_fit(b.user_id, b.item_id, b.rating, u.age, u.gender, u.job, '{"kind": "lfg"}')
  FROM base b JOIN users u USING (user_id);
CREATE TABLE checks (model text, name text, ok boolean, detail text);

-- lfg_recommend_user against lfg_predict, every u1 user
INSERT INTO checks
SELECT m, 'recommend_user scores equal lfg_predict', bool_and(r.score = lfg_predict(m, d.user_id, r.item_id)),
       count(*) || ' rows'
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, rated d, LATERAL lfg_recommend_user(m, d.user_id, 10, d.items) r
  GROUP BY m;
INSERT INTO checks
SELECT m, 'recommend_user returns 10 unrated items per user',
       bool_and(r.item_id <> ALL (d.items)) AND count(*) = 10 * (SELECT count(*) FROM rated), count(*) || ' rows'
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, rated d, LATERAL lfg_recommend_user(m, d.user_id, 10, d.items) r
  GROUP BY m;
INSERT INTO checks
SELECT m, 'first row is the best unrated item (max of lfg_predict over every unrated item)',
       bool_and(f.score = b.best), count(*) || ' users, ' || sum(b.pairs) || ' lfg_predict calls'
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, rated d,
       LATERAL (SELECT score FROM lfg_recommend_user(m, d.user_id, 1, d.items)) f,
       LATERAL (SELECT max(lfg_predict(m, d.user_id, i.item_id)) AS best, count(*) AS pairs
                  FROM items i WHERE i.item_id <> ALL (d.items)) b
  GROUP BY m;

-- lfg_explain: 100 u1.test users as new users, 30 items each
CREATE TABLE newu AS
  SELECT t.user_id, jsonb_object_agg(t.item_id, t.rating) AS ratings, min(u.age) AS age,
         min(u.gender) AS gender, min(u.job) AS job
  FROM test t JOIN users u USING (user_id) GROUP BY t.user_id ORDER BY t.user_id LIMIT 100;
INSERT INTO checks
SELECT m, 'explanation rows add up to the score (clipped: lfg_predict, within 1e-4)',
       bool_and(abs(least(5, greatest(1, e.total)) - p.s) < 1e-4),
       count(*) || ' (user, item) pairs, max |error| ' || to_char(max(abs(least(5, greatest(1, e.total)) - p.s)), '9.9EEEE')
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, newu n,
       LATERAL (SELECT item_id FROM items ORDER BY hashint4(item_id + n.user_id) LIMIT 30) i,
       LATERAL (SELECT sum(contribution) AS total FROM lfg_explain(m, n.ratings, n.age, n.gender, n.job, i.item_id)) e,
       LATERAL (SELECT (lfg_predict(m, n.ratings, n.age, n.gender, n.job, ARRAY[i.item_id::bigint]))[1] AS s) p
  GROUP BY m;

-- lfg_similar_items against lfg_item_factors, 200 items
CREATE FUNCTION cosine(a real[], b real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS \$\$
  SELECT sum(x::float8 * y) / sqrt(sum(x::float8 * x) * sum(y::float8 * y))
    FROM unnest(a[1:array_length(a, 1) - 1], b[1:array_length(b, 1) - 1]) AS t(x, y) \$\$;
CREATE TABLE probe AS SELECT item_id FROM items ORDER BY hashint4(item_id) LIMIT 200;
INSERT INTO checks
SELECT m, 'similar_items equals the cosine of lfg_item_factors (1e-9), item itself left out',
       bool_and(abs(s.similarity - cosine(lfg_item_factors(m, p.item_id), lfg_item_factors(m, s.item_id))) < 1e-9
                AND s.item_id <> p.item_id), count(*) || ' rows'
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, probe p, LATERAL lfg_similar_items(m, p.item_id, 10) s
  GROUP BY m;
INSERT INTO checks
SELECT m, 'similar_items are the 10 best cosines', bool_and(got = want), count(*) || ' items'
  FROM unnest(ARRAY['known biassvd', 'known lfg']) m, probe p,
       LATERAL (SELECT array_agg(item_id) AS got FROM lfg_similar_items(m, p.item_id, 10)) g,
       LATERAL (SELECT array_agg(item_id ORDER BY c DESC, item_id) AS want FROM (
                  SELECT i.item_id::bigint AS item_id, cosine(lfg_item_factors(m, p.item_id), lfg_item_factors(m, i.item_id)) AS c
                    FROM items i WHERE i.item_id <> p.item_id ORDER BY c DESC, i.item_id LIMIT 10) q) w
  GROUP BY m;

\pset footer off
\pset format aligned
SELECT model, name AS "check", CASE WHEN ok THEN 'ok' ELSE 'FAILED' END AS result, detail FROM checks ORDER BY model, name;
DO \$\$ BEGIN
  IF EXISTS (SELECT 1 FROM known.checks WHERE ok IS NOT TRUE) THEN
    RAISE EXCEPTION 'known: a contract check failed';
  END IF;
END \$\$;
DELETE FROM lfg.models WHERE name IN ('known biassvd', 'known lfg');
DROP SCHEMA known CASCADE;
SQL
echo "known: all contract checks passed"
