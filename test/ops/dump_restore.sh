#!/usr/bin/env bash
# pg_dump / pg_restore of a database that uses lfg: models of kinds lfg and
# biassvd, two versions of one with the older one activated (lfg_activate), a
# retrain logged in lfg.retrain_log, and recorded answers of lfg_recommend,
# lfg_predict and lfg_user_factors. After pg_dump -Fc and pg_restore into a
# fresh database, the restored database must give exactly the recorded
# answers, and lfg.models, lfg.active and lfg.retrain_log (with its sequence)
# must hold the same rows. Needs lfg 0.2.0 installed.
# Usage: bash test/ops/dump_restore.sh   (port: LFG_OPS_DUMP_PORT, default 54351)
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/ops/lib.sh

port=${LFG_OPS_DUMP_PORT:-54351}
t0=$(date +%s)
ops_start dump_restore "$port"
dump=$LFG_CLUSTER_DIR/lfg.dump

# The database to dump
q postgres -c "CREATE DATABASE lfg_src" >/dev/null
q lfg_src -c "CREATE EXTENSION lfg" \
  -v users=300 -v items=120 -v n=12000 -v seed=31 -v first=250 -f test/ops/data.sql >/dev/null ||
  fail "setting up the source database failed"
q lfg_src >/dev/null <<'SQL' || fail "training the source database's models failed"
-- 'gen' (kind lfg): version 1 trained directly, version 2 by lfg_retrain on
-- more ratings, then version 1 activated again
INSERT INTO lfg.models (name, model)
  SELECT 'gen', lfg_fit(user_id, item_id, rating, age, gender, job,
                        '{"hidden": [32, 32], "factors": 8, "epochs": 20, "seed": 1}')
  FROM training_ratings;
INSERT INTO ratings SELECT * FROM all_ratings WHERE user_id > 250;
CALL lfg_retrain('gen', 'training_ratings', NULL, tolerance => 1.0);
SELECT lfg_activate('gen', 1);
-- 'bias' (kind biassvd), one version, served as the newest (no lfg.active row)
INSERT INTO lfg.models (name, model)
  SELECT 'bias', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 16, "epochs": 15}')
  FROM ratings;

-- the state of the extension's tables, as text, for a comparison after restore
CREATE VIEW lfg_state AS
  SELECT 'models' AS t, format('%s|%s|%s|%s|%s|%s|%s', name, version, kind, created_at, options,
                                metrics, md5(model)) AS row FROM lfg.models
  UNION ALL SELECT 'active', format('%s|%s|%s', name, version, activated_at) FROM lfg.active
  UNION ALL SELECT 'retrain_log', format('%s', l) FROM lfg.retrain_log l
  UNION ALL SELECT 'retrain_log_id_seq', format('%s|%s', last_value, is_called) FROM lfg.retrain_log_id_seq
  UNION ALL SELECT 'model_versions', format('%s|%s|%s|%s|%s', name, version, active, activated_at, bytes)
              FROM lfg.model_versions;
SQL
# new users to serve, and the answers recorded in the source database
q lfg_src -v versioned=gen -f test/ops/probe.sql >/dev/null || fail "recording the answers failed"
check lfg_src "before the dump, 'gen' has versions 1 and 2 and serves version 1 (lfg_activate)" \
  "SELECT lfg_active_version('gen') = 1 AND (SELECT array_agg(version ORDER BY version) FROM lfg.models WHERE name = 'gen') = '{1,2}'
      AND (SELECT version FROM lfg.active WHERE name = 'gen') = 1"
check lfg_src "before the dump, lfg_predict of 'gen' differs between version 1 and version 2" \
  "SELECT count(*) > 0 FROM recorded a JOIN recorded b USING (model, id, item_id)
    WHERE a.fn = 'predict_v1' AND b.fn = 'predict_v2' AND a.score <> b.score"
check lfg_src "before the dump, 'gen' serves version 1" \
  "SELECT bool_and(a.score = b.score) FROM recorded a JOIN recorded b USING (model, id, item_id)
    WHERE a.fn = 'predict' AND b.fn = 'predict_v1'"
check lfg_src "lfg.retrain_log has the retrain" "SELECT count(*) = 1 FROM lfg.retrain_log WHERE name = 'gen' AND new_version = 2"
n_answers=$(q lfg_src -c "SELECT count(*) FROM recorded")
q lfg_src -c "SELECT t, row FROM lfg_state ORDER BY 1, 2" >"$LFG_CLUSTER_DIR/state_src.txt"

# Dump, and look at what the archive holds for the extension's tables
pg_dump -Fc -d lfg_src -f "$dump" || fail "pg_dump failed"
pg_restore -l "$dump" >"$LFG_CLUSTER_DIR/toc.txt"
missing=()
for entry in "TABLE DATA lfg models" "TABLE DATA lfg active" "TABLE DATA lfg retrain_log" \
             "SEQUENCE SET lfg retrain_log_id_seq"; do
  grep -q " $entry " "$LFG_CLUSTER_DIR/toc.txt" || missing+=("$entry")
done
[ ${#missing[@]} -eq 0 ] || fail "the dump misses: ${missing[*]}; its lfg entries:
$(grep -i lfg "$LFG_CLUSTER_DIR/toc.txt")"

# Restore into a fresh database
q postgres -c "CREATE DATABASE lfg_dst" >/dev/null
restore_start=$(date +%s%N)
pg_restore --exit-on-error -d lfg_dst "$dump" 2>"$LFG_CLUSTER_DIR/restore.err" ||
  fail "pg_restore failed: $(cat "$LFG_CLUSTER_DIR/restore.err")"
restore_ms=$(( ($(date +%s%N) - restore_start) / 1000000 ))
[ ! -s "$LFG_CLUSTER_DIR/restore.err" ] || fail "pg_restore wrote: $(cat "$LFG_CLUSTER_DIR/restore.err")"

# The extension's tables: the same rows (created_at, options, metrics, bytes,
# activation, log, sequence)
q lfg_dst -c "SELECT t, row FROM lfg_state ORDER BY 1, 2" >"$LFG_CLUSTER_DIR/state_dst.txt"
if ! diff -u "$LFG_CLUSTER_DIR/state_src.txt" "$LFG_CLUSTER_DIR/state_dst.txt" >"$LFG_CLUSTER_DIR/state.diff"; then
  fail "lfg.models / lfg.active / lfg.retrain_log differ after the restore:
$(cat "$LFG_CLUSTER_DIR/state.diff")"
fi
read -r n_models n_active n_log < <(q lfg_dst -F ' ' -c "SELECT (SELECT count(*) FROM lfg.models),
  (SELECT count(*) FROM lfg.active), (SELECT count(*) FROM lfg.retrain_log)")
[ "$n_models" = 3 ] && [ "$n_active" -ge 1 ] && [ "$n_log" = 1 ] ||
  fail "restored $n_models models, $n_active lfg.active rows, $n_log lfg.retrain_log rows (expected 3, >= 1, 1)"
check lfg_dst "after the restore, 'gen' serves version 1" "SELECT lfg_active_version('gen') = 1"
check lfg_dst "after the restore, 'bias' serves version 1" "SELECT lfg_active_version('bias') = 1"

# Serving: exactly the recorded answers (item ids, ranks, scores, factors)
mismatch=$(q lfg_dst -c "SELECT count(*) FROM recorded r FULL JOIN answers a
  ON a.model = r.model AND a.fn = r.fn AND a.id = r.id AND a.item_id IS NOT DISTINCT FROM r.item_id
  WHERE r.model IS NULL OR a.model IS NULL OR a.score IS DISTINCT FROM r.score
     OR a.factors IS DISTINCT FROM r.factors")
if [ "$mismatch" != 0 ]; then
  fail "$mismatch of $n_answers answers differ after the restore, e.g.:
$(q lfg_dst -c "SELECT r.model, r.fn, r.id, r.item_id, r.score, a.score FROM recorded r FULL JOIN answers a
  ON a.model = r.model AND a.fn = r.fn AND a.id = r.id AND a.item_id IS NOT DISTINCT FROM r.item_id
  WHERE r.model IS NULL OR a.model IS NULL OR a.score IS DISTINCT FROM r.score
     OR a.factors IS DISTINCT FROM r.factors LIMIT 10")"
fi
# the same ranking, in order, from both databases
rank_sql="SELECT string_agg(item_id || ':' || score, ' ') FROM probe_users p, unnest(ARRAY['gen', 'bias']) m,
  lfg_recommend(m, p.ratings, p.age, p.gender, p.job, 20)"
[ "$(q lfg_src -c "$rank_sql")" = "$(q lfg_dst -c "$rank_sql")" ] || fail "lfg_recommend ranks differently after the restore"

# Life goes on in the restored database: versions and log ids continue
q lfg_dst >/dev/null <<'SQL' || fail "lfg_activate or lfg_retrain failed on the restored database"
SELECT lfg_activate('gen', 2);
CALL lfg_retrain('bias', 'ratings', NULL);
SQL
check lfg_dst "after the restore, lfg_activate switches 'gen' to version 2" \
  "SELECT lfg_active_version('gen') = 2 AND bool_and(a.score = lfg_predict('gen', a.id, a.item_id))
     FROM recorded a WHERE a.fn = 'predict_v2'"
check lfg_dst "after the restore, lfg_retrain numbers 'bias' version 2 and log id 2" \
  "SELECT (SELECT max(version) FROM lfg.models WHERE name = 'bias') = 2
      AND (SELECT array_agg(id ORDER BY id) FROM lfg.retrain_log) = '{1,2}'"

echo "dump_restore: OK in $(( $(date +%s) - t0 ))s: dump of $(stat -c %s "$dump") bytes" \
  "(TOC has lfg.models, lfg.active, lfg.retrain_log and its sequence), restored in ${restore_ms} ms;" \
  "$n_models model versions (lfg 'gen' v1+v2 with v1 activated, biassvd 'bias'), $n_active lfg.active row(s)," \
  "$n_log retrain_log row: identical rows (created_at, options, metrics, md5 of the bytes, activated_at);" \
  "$n_answers recorded answers (lfg_recommend top 20, lfg_predict, lfg_user_factors) exactly equal;" \
  "afterwards lfg_activate and lfg_retrain continue the numbering"
