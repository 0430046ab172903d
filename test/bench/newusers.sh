#!/usr/bin/env bash
# New-user benchmark: users never seen in training, served from the ratings
# they give right now.
#
#   test/bench/newusers.sh [--check] [--ml1m] [DATA_DIR]
#
# MovieLens-100k by default (DATA_DIR ../shared/data/ml-100k), or
# MovieLens-1m with --ml1m (DATA_DIR ../shared/data/ml-1m). 20% of the users
# (a seeded hash) are held out; the models train on the other 80%. Each
# held-out user reveals n = 5, 10, 20 and half of their ratings (a seeded
# order) and the rest are their test set. Printed per n: test RMSE of
#   mu + b_i               (what libraries without new-user support return)
#   fold-in SVD, fold-in BiasSVD (ridge solve with the item side fixed)
#   LFG generator alone    (one pass, lfg.refine = off), both presets
#   LFG served (lfg.refine = on: what lfg_recommend serves, the fold-in the
#                           model learned; doc/serving.md)
#   BiasSVD retrained      (the full aggregate over the training ratings plus
#                           every held-out user's revealed ratings)
# with the median time per new user (for retraining: the aggregate run),
# and precision@10 / recall@10 of lfg_recommend against each user's test
# ratings of 4 and 5, and each LFG model's learned fold-in (its metrics'
# table: the choice per bucket of n and its episode RMSEs beside those of
# plain fold-in on its own and on the base BiasSVD's item side). It
# states at which n the paper preset is above fold-in BiasSVD, and by how
# much. With --check it exits non-zero unless the served LFG (new_user)
# path is below fold-in BiasSVD at n = 5, 10, 20 and not above it at half.
set -euo pipefail
# shellcheck source=movielens.sh
source "$(dirname "$0")/movielens.sh"
lfg_ml_setup newusers 54333 "$@"



psql -X -q -v ON_ERROR_STOP=1 -v check=$check <<SQL
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lfg;
DROP SCHEMA IF EXISTS nu CASCADE;
CREATE SCHEMA nu;
SET search_path = nu, public;
$load
-- 20% of users held out (seeded), the models train on the rest
CREATE TABLE held AS SELECT user_id FROM users WHERE abs(hashint8(user_id::bigint * 7919 + 2024)) % 5 = 0;
CREATE TABLE train AS SELECT r.user_id, r.item_id, r.rating FROM ratings r
  WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.user_id = r.user_id);
-- each held-out user's ratings in a seeded order
CREATE TABLE ho AS
  SELECT r.user_id, r.item_id, r.rating,
         row_number() OVER (PARTITION BY r.user_id ORDER BY hashint8(r.user_id::bigint * 1000003 + r.item_id + 7), r.item_id) AS pos,
         count(*) OVER (PARTITION BY r.user_id) AS n_user
  FROM ratings r JOIN held USING (user_id);
CREATE TABLE settings (setting text, n int, ord int);
INSERT INTO settings VALUES ('5', 5, 1), ('10', 10, 2), ('20', 20, 3), ('half', NULL, 4);
-- per setting and user: the revealed ratings (jsonb and arrays) and the test set
CREATE TABLE cases AS
  SELECT s.setting, s.ord, h.user_id, u.age::float8 AS age, u.gender, u.job,
         coalesce(jsonb_object_agg(h.item_id, h.rating) FILTER (WHERE h.pos <= coalesce(s.n, h.n_user / 2)), '{}') AS revealed,
         array_agg(h.item_id::bigint ORDER BY h.item_id) FILTER (WHERE h.pos > coalesce(s.n, h.n_user / 2)) AS test_items,
         array_agg(h.rating::float8 ORDER BY h.item_id) FILTER (WHERE h.pos > coalesce(s.n, h.n_user / 2)) AS test_ratings
  FROM settings s, ho h JOIN users u USING (user_id)
  GROUP BY s.setting, s.ord, h.user_id, u.age, u.gender, u.job;
DELETE FROM cases WHERE test_items IS NULL;
ANALYZE;
SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM held) AS held_out_users,
       (SELECT count(*) FROM train) AS training_ratings;

CREATE TABLE results (method text, setting text, ord int, sse float8, n int, us_per_user float8[]);
CREATE TABLE topk (method text, setting text, ord int, prec float8, rec float8);
CREATE TABLE fits (model text, seconds float8);

CREATE PROCEDURE fit(name text, q text) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE format('INSERT INTO lfg.models (name, model) %s', q) USING name;
  INSERT INTO nu.fits VALUES (name, extract(epoch FROM clock_timestamp() - t0));
  COMMIT;
END \$\$;

-- Serve every case with a model: time each user's call, accumulate the error
CREATE PROCEDURE serve(method text, model text, empty boolean, refine boolean) LANGUAGE plpgsql AS \$\$
DECLARE
  c record;
  p float8[];
  t0 timestamptz;
  us float8[];
  cur text := NULL;
  sse float8;
  cnt int;
  cur_ord int;
BEGIN
  PERFORM set_config('lfg.refine', CASE WHEN refine THEN 'on' ELSE 'off' END, false);
  FOR c IN SELECT * FROM nu.cases ORDER BY ord, user_id LOOP
    IF cur IS DISTINCT FROM c.setting THEN
      IF cur IS NOT NULL THEN
        INSERT INTO nu.results VALUES (method, cur, cur_ord, sse, cnt, us);
      END IF;
      cur := c.setting; cur_ord := c.ord; sse := 0; cnt := 0; us := '{}';
    END IF;
    t0 := clock_timestamp();
    p := lfg_predict(model, CASE WHEN empty THEN '{}'::jsonb ELSE c.revealed END, c.age, c.gender, c.job, c.test_items);
    us := us || 1e6 * extract(epoch FROM clock_timestamp() - t0)::float8;
    SELECT sse + sum((x - y) ^ 2), cnt + count(*) INTO sse, cnt FROM unnest(p, c.test_ratings) AS t(x, y);
  END LOOP;
  INSERT INTO nu.results VALUES (method, cur, cur_ord, sse, cnt, us);
  PERFORM set_config('lfg.refine', 'on', false);
  COMMIT;
END \$\$;

-- precision@10 and recall@10 of lfg_recommend against test ratings of 4 and 5
CREATE PROCEDURE rank(method text, model text) LANGUAGE plpgsql AS \$\$
BEGIN
  INSERT INTO nu.topk
    SELECT method, c.setting, c.ord, avg(hit::float8 / 10), avg(hit::float8 / rel)
    FROM nu.cases c,
         LATERAL (SELECT count(*) FILTER (WHERE y >= 4) AS rel FROM unnest(c.test_ratings) y) r,
         LATERAL (SELECT count(*) AS hit FROM lfg_recommend(model, c.revealed, c.age, c.gender, c.job, 10) t
                  JOIN unnest(c.test_items, c.test_ratings) AS x(item, y) ON x.item = t.item_id AND x.y >= 4) h
    WHERE r.rel > 0
    GROUP BY c.setting, c.ord;
  COMMIT;
END \$\$;

\echo 'Training SVD, BiasSVD and LFG (both presets) on the training users'
CALL fit('nu svd', 'SELECT \$1, lfg_fit(user_id, item_id, rating, ''{"kind": "svd"}'') FROM nu.train');
CALL fit('nu biassvd', 'SELECT \$1, lfg_fit(user_id, item_id, rating) FROM nu.train');
CALL fit('nu lfg new_user', 'SELECT \$1, lfg_fit(t.user_id, t.item_id, t.rating, u.age, u.gender, u.job, ''{"preset": "new_user"}'') FROM nu.train t JOIN nu.users u USING (user_id)');
CALL fit('nu lfg paper', 'SELECT \$1, lfg_fit(t.user_id, t.item_id, t.rating, u.age, u.gender, u.job, ''{"preset": "paper"}'') FROM nu.train t JOIN nu.users u USING (user_id)');

\echo 'Serving the held-out users'
CALL serve('mu + b_i', 'nu biassvd', true, true);
CALL serve('fold-in SVD', 'nu svd', false, true);
CALL serve('fold-in BiasSVD', 'nu biassvd', false, true);
CALL serve('LFG new_user, generator alone', 'nu lfg new_user', false, false);
CALL serve('LFG new_user, generator + fold-in (served)', 'nu lfg new_user', false, true);
CALL serve('LFG paper, generator alone', 'nu lfg paper', false, false);
CALL serve('LFG paper, learned fold-in (served)', 'nu lfg paper', false, true);
CALL rank('LFG new_user (served)', 'nu lfg new_user');
CALL rank('fold-in BiasSVD', 'nu biassvd');

\echo 'Retraining BiasSVD with the revealed ratings (one full aggregate run per n)'
DO \$\$
DECLARE s record; t0 timestamptz; secs float8;
BEGIN
  FOR s IN SELECT * FROM nu.settings ORDER BY ord LOOP
    t0 := clock_timestamp();
    INSERT INTO lfg.models (name, model)
      SELECT 'nu retrained ' || s.setting, lfg_fit(user_id, item_id, rating)
      FROM (SELECT user_id, item_id, rating FROM nu.train
            UNION ALL
            SELECT user_id, item_id, rating FROM nu.ho WHERE pos <= coalesce(s.n, n_user / 2)) a;
    secs := extract(epoch FROM clock_timestamp() - t0);
    INSERT INTO nu.results
      SELECT 'BiasSVD retrained', s.setting, s.ord,
             sum((lfg_predict('nu retrained ' || s.setting, c.user_id, x.item) - x.y) ^ 2), count(*),
             ARRAY[1e6 * secs]
      FROM nu.cases c, unnest(c.test_items, c.test_ratings) AS x(item, y) WHERE c.setting = s.setting;
  END LOOP;
END \$\$;

\pset footer off
\echo
\echo 'Test RMSE of held-out users by number of revealed ratings n'
SELECT method,
       round(max(sqrt(sse / n)) FILTER (WHERE setting = '5')::numeric, 4) AS "n=5",
       round(max(sqrt(sse / n)) FILTER (WHERE setting = '10')::numeric, 4) AS "n=10",
       round(max(sqrt(sse / n)) FILTER (WHERE setting = '20')::numeric, 4) AS "n=20",
       round(max(sqrt(sse / n)) FILTER (WHERE setting = 'half')::numeric, 4) AS "half"
  FROM results GROUP BY method ORDER BY max(sqrt(sse / n)) FILTER (WHERE setting = '10') DESC;
\echo 'Median time per new user in microseconds (lfg_predict of the test items; retraining: the whole aggregate)'
SELECT method, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 1) AS median_us,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t))::numeric / 1000, 3) AS median_ms
  FROM results, unnest(us_per_user) t GROUP BY method ORDER BY 2;
SELECT round(((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM results, unnest(us_per_user) t
                 WHERE method = 'BiasSVD retrained') /
              (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) FROM results, unnest(us_per_user) t
                 WHERE method = 'LFG new_user, generator + fold-in (served)'))::numeric, 0) AS retraining_over_lfg;
\echo 'precision@10 and recall@10 of lfg_recommend (relevant: test ratings of 4 and 5)'
SELECT method, setting AS n, round(prec::numeric, 4) AS precision_at_10, round(rec::numeric, 4) AS recall_at_10
  FROM topk ORDER BY ord, method;
SELECT model, round(seconds::numeric, 2) AS fit_seconds FROM fits ORDER BY seconds;
\echo 'The learned fold-in of each LFG model (metrics foldin: per bucket of n, the weights w, c, v of the'
\echo 'generator, the mean user and the base prior, reg, and on the training episodes the RMSE of the choice,'
\echo 'of plain fold-in of the model item side and of the base BiasSVD), and the model size in bytes'
SELECT m.name AS model, b->>'n_min' AS n_min, b->>'prior' AS w, b->>'center' AS c, b->>'base' AS v,
       coalesce(b->>'reg', 'inf') AS reg, round((b->>'rmse')::numeric, 4) AS choice,
       round((b->>'foldin_rmse')::numeric, 4) AS own_foldin, round((b->>'biassvd_rmse')::numeric, 4) AS biassvd_foldin,
       octet_length(m.model) AS bytes
  FROM lfg.models m, jsonb_array_elements(m.metrics->'foldin') WITH ORDINALITY AS t(b, ord)
  WHERE m.name LIKE 'nu lfg %' ORDER BY m.name, ord;

SELECT bool_and(CASE WHEN l.setting = 'half' THEN sqrt(l.sse / l.n) <= sqrt(f.sse / f.n)
                     ELSE sqrt(l.sse / l.n) < sqrt(f.sse / f.n) END) AS ok
  FROM results l JOIN results f USING (setting)
  WHERE l.method = 'LFG new_user, generator + fold-in (served)' AND f.method = 'fold-in BiasSVD' \gset
-- the paper preset against fold-in BiasSVD (reported; not a --check target)
SELECT coalesce(string_agg(format('%s (by %s)', l.setting, round((sqrt(l.sse / l.n) - sqrt(f.sse / f.n))::numeric, 4)),
                           ', ' ORDER BY l.ord) FILTER (WHERE sqrt(l.sse / l.n) > sqrt(f.sse / f.n)), '') AS paper_worse
  FROM results l JOIN results f USING (setting)
  WHERE l.method = 'LFG paper, learned fold-in (served)' AND f.method = 'fold-in BiasSVD' \gset
SELECT :'paper_worse' = '' AS paper_ok \gset
\if :paper_ok
  \echo 'newusers: LFG paper (served) is not above fold-in BiasSVD at any n'
\else
  \echo 'newusers: LFG paper (served) is above fold-in BiasSVD at n =' :paper_worse
\endif
\if :ok
  \echo 'newusers: the served LFG path is below fold-in BiasSVD at n = 5, 10, 20 and not above it at half'
\else
  \echo 'newusers: the served LFG path does NOT beat fold-in BiasSVD everywhere'
  \if :check
    DO \$\$ BEGIN RAISE EXCEPTION 'newusers: target missed'; END \$\$;
  \endif
\endif
DELETE FROM lfg.models WHERE name LIKE 'nu %';
DROP SCHEMA nu CASCADE;
SQL
