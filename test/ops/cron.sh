#!/usr/bin/env bash
# Retraining from pg_cron: a throwaway cluster preloads pg_cron (its jobs
# connect through the unix socket: cron.host), a model serves version 1, new
# ratings arrive, and a job scheduled with cron.schedule runs
# CALL lfg_retrain(...). The test waits for the run to succeed, then checks
# that version 2 exists, is active, was logged in lfg.retrain_log, and is what
# lfg_recommend and lfg_predict serve, also in a session opened before the
# retrain. Needs lfg 0.2.0 installed and postgresql-15-cron.
# Usage: bash test/ops/cron.sh   (port: LFG_OPS_CRON_PORT, default 54350)
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/ops/lib.sh

port=${LFG_OPS_CRON_PORT:-54350}
wait_limit=${LFG_OPS_CRON_WAIT:-150}
job=lfg-retrain-test
t0=$(date +%s)

sess_pid=
ops_on_exit() {
  [ -n "$sess_pid" ] && kill "$sess_pid" 2>/dev/null
  psql -X -qAt -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '$job'" >/dev/null 2>&1
}

[ -f "$LFG_PG_BIN/../lib/pg_cron.so" ] || {
  echo "FAIL (test/ops/cron.sh): pg_cron is not installed (apt-get install postgresql-15-cron)" >&2; exit 1; }
# pg_cron's jobs connect through libpq: cron.host is the socket directory
ops_start cron "$port" "shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '@SOCKDIR@'"
[ "$(q postgres -c 'SHOW cron.host')" = "$LFG_CLUSTER_DIR" ] || fail "cron.host is not the socket directory"

# 400 users, 150 items; users 301..400 rate only after version 1
q postgres -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION lfg" \
  -v users=400 -v items=150 -v n=20000 -v seed=7 -v first=300 -f test/ops/data.sql >/dev/null ||
  fail "setting up the database failed"
q postgres >/dev/null <<'SQL' || fail "training version 1 failed"
-- version 1, trained directly (lfg_retrain reuses its options)
INSERT INTO lfg.models (name, model)
  SELECT 'm', lfg_fit(user_id, item_id, rating, age, gender, job,
                      '{"hidden": [32, 32], "factors": 8, "epochs": 30, "seed": 1}')
  FROM training_ratings;
SQL
check postgres "version 1 is active before the retrain" \
  "SELECT lfg_active_version('m') = 1 AND count(*) = 1 FROM lfg.models WHERE name = 'm'"
v1_rows=$(q postgres -c "SELECT count(*) FROM ratings")

# A long-lived session that serves version 1 before the retrain (its cache
# holds version 1) and must switch to version 2 after the job's commit.
newuser="'{\"3\": 5, \"17\": 1, \"42\": 4, \"99\": 2, \"120\": 5}'::jsonb, 30, 'F', 'doctor'"
rec_sql="SELECT string_agg(item_id || ':' || score::text, ' ' ORDER BY item_id) FROM lfg_recommend('m', $newuser, 10);"
mkfifo "$LFG_CLUSTER_DIR/sess.in"
psql -X -qAt -v ON_ERROR_STOP=1 -d postgres <"$LFG_CLUSTER_DIR/sess.in" >>"$LFG_CLUSTER_DIR/sess.out" 2>&1 &
sess_pid=$!
exec 7>"$LFG_CLUSTER_DIR/sess.in"
# sess SQL: run SQL in the long-lived session, print its output
sess() {
  local mark="__done_${RANDOM}_$SECONDS"
  printf '%s\n\\echo %s\n' "$1" "$mark" >&7
  local i
  for i in $(seq 1 300); do
    grep -qx "$mark" "$LFG_CLUSTER_DIR/sess.out" && break
    kill -0 "$sess_pid" 2>/dev/null || fail "the long-lived session died: $(cat "$LFG_CLUSTER_DIR/sess.out")"
    sleep 0.1
  done
  grep -qx "$mark" "$LFG_CLUSTER_DIR/sess.out" || fail "the long-lived session did not answer: $1"
  sed -n "1,/^$mark\$/p" "$LFG_CLUSTER_DIR/sess.out" | sed '$d'
  : >"$LFG_CLUSTER_DIR/sess.out"
}
rec_before=$(sess "$rec_sql")
[ -n "$rec_before" ] || fail "no recommendations before the retrain"
sess_backend=$(sess "SELECT pg_backend_pid();")

# New ratings arrive: users 301..400 (whom version 1 does not know)
q postgres -c "INSERT INTO ratings SELECT * FROM all_ratings WHERE user_id > 300" >/dev/null
all_rows=$(q postgres -c "SELECT count(*) FROM ratings")

jobid=$(q postgres -c "SELECT cron.schedule('$job', '* * * * *',
  \$\$CALL lfg_retrain('m', 'training_ratings', NULL, tolerance => 1.0)\$\$)")
echo "cron: job $jobid scheduled at $(date +%T), waiting for its run (at most ${wait_limit}s)"
status=
for i in $(seq 1 $((wait_limit / 2))); do
  status=$(q postgres -c "SELECT status FROM cron.job_run_details WHERE jobid = $jobid
                 AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")
  [ -n "$status" ] && break
  sleep 2
done
waited=$(( $(date +%s) - t0 ))
[ -n "$status" ] || fail "no finished run of job $jobid after ${wait_limit}s: $(q postgres -c "SELECT * FROM cron.job_run_details")"
if [ "$status" = failed ]; then
  fail "the cron run failed: $(q postgres -c "SELECT return_message FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid LIMIT 1")"
fi
q postgres -c "SELECT cron.unschedule('$job')" >/dev/null
# a run that started meanwhile finishes before the checks
for i in $(seq 1 60); do
  [ "$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status IN ('starting', 'running')")" = 0 ] && break
  sleep 1
done
runs=$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status = 'succeeded'")
failed=$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status <> 'succeeded'")
[ "$failed" = 0 ] || fail "$failed run(s) did not succeed: $(q postgres -c "SELECT status, return_message FROM cron.job_run_details WHERE jobid = $jobid")"
[ "$runs" = 1 ] || echo "cron: note: $runs runs succeeded before the job was unscheduled"
check postgres "the job is unscheduled" "SELECT count(*) = 0 FROM cron.job WHERE jobname = '$job'"

# Versions: one per successful run, the newest active
newest=$(q postgres -c "SELECT max(version) FROM lfg.models WHERE name = 'm'")
[ "$newest" = $((1 + runs)) ] || fail "expected version $((1 + runs)) after $runs run(s), the newest is $newest"
check postgres "lfg_active_version is the new version" "SELECT lfg_active_version('m') = $newest"
check postgres "lfg.active holds the new version" "SELECT count(*) = 1 AND min(version) = $newest FROM lfg.active WHERE name = 'm'"
check postgres "lfg.model_versions marks only the new version active" \
  "SELECT array_agg(version ORDER BY version) = ARRAY[$newest] FROM lfg.model_versions WHERE name = 'm' AND active"
check postgres "the new version was trained on the new ratings (400 users, version 1: 300)" \
  "SELECT (SELECT metrics->>'users' FROM lfg.models WHERE name = 'm' AND version = 1) = '300'
      AND (SELECT metrics->>'users' FROM lfg.models WHERE name = 'm' AND version = $newest) = '400'"

# lfg.retrain_log: one row per run; the first one is version 1 -> 2
check postgres "lfg.retrain_log has one row per successful run" "SELECT count(*) = $runs FROM lfg.retrain_log WHERE name = 'm'"
check postgres "lfg.retrain_log records the decision of the run" \
  "SELECT previous_version = 1 AND new_version = 2 AND activated AND decision LIKE 'activated%'
          AND tolerance = 1.0 AND previous_rmse > 0 AND new_rmse > 0 AND new_rmse <= previous_rmse + tolerance
          AND train_rows + validation_rows = $all_rows AND validation_rows > 0
          AND validation_rows < 0.15 * $all_rows AND train_seconds > 0 AND finished_at >= started_at
     FROM lfg.retrain_log WHERE name = 'm' ORDER BY id LIMIT 1"
read -r prev_rmse new_rmse train_rows val_rows train_s < <(q postgres -F ' ' -c "SELECT round(previous_rmse::numeric, 4),
  round(new_rmse::numeric, 4), train_rows, validation_rows, round(train_seconds::numeric, 2)
  FROM lfg.retrain_log WHERE name = 'm' ORDER BY id LIMIT 1")

# Serving: copies of the bytes of version 1 and of the new version under
# names of their own give the reference answers of each version.
q postgres >/dev/null <<SQL || fail "copying the versions failed"
INSERT INTO lfg.models (name, model) SELECT 'm_v1', model FROM lfg.models WHERE name = 'm' AND version = 1;
INSERT INTO lfg.models (name, model) SELECT 'm_new', model FROM lfg.models WHERE name = 'm' AND version = $newest;
SQL
ref_v1=$(q postgres -c "${rec_sql//\'m\'/\'m_v1\'}")
ref_new=$(q postgres -c "${rec_sql//\'m\'/\'m_new\'}")
[ "$rec_before" = "$ref_v1" ] || fail "before the retrain, lfg_recommend did not serve version 1:
  served: $rec_before
  v1:     $ref_v1"
[ "$ref_v1" != "$ref_new" ] || fail "version 1 and the new version recommend the same items and scores: the check cannot tell them apart"
rec_after_old=$(sess "$rec_sql")
[ "$(sess "SELECT pg_backend_pid();")" = "$sess_backend" ] || fail "the long-lived session reconnected"
rec_after_new=$(q postgres -c "$rec_sql")
[ "$rec_after_new" = "$ref_new" ] || fail "a new session's lfg_recommend does not serve the new version:
  served: $rec_after_new
  new:    $ref_new
  v1:     $ref_v1"
[ "$rec_after_old" = "$ref_new" ] || fail "the session opened before the retrain still does not serve the new version:
  served: $rec_after_old
  new:    $ref_new
  v1:     $ref_v1"
same_items=$(q postgres -c "SELECT count(*) FROM (SELECT item_id FROM lfg_recommend('m_v1', $newuser, 10)
                   INTERSECT SELECT item_id FROM lfg_recommend('m_new', $newuser, 10)) s")
# lfg_predict for that new user over every item, and for a user only the new
# version knows (user 350: version 1 falls back to mu + b_i)
check postgres "lfg_predict (new user, item list) serves the new version" \
  "SELECT lfg_predict('m', $newuser, array_agg(i::bigint)) = lfg_predict('m_new', $newuser, array_agg(i::bigint))
      AND lfg_predict('m', $newuser, array_agg(i::bigint)) <> lfg_predict('m_v1', $newuser, array_agg(i::bigint))
     FROM generate_series(1, 150) i"
check postgres "lfg_predict (known user 350) serves the new version" \
  "SELECT bool_and(lfg_predict('m', 350, i) = lfg_predict('m', $newest, 350, i))
      AND bool_or(lfg_predict('m', 350, i) <> lfg_predict('m', 1, 350, i))
     FROM generate_series(1, 150) i"
sess_pred=$(sess "SELECT bool_and(lfg_predict('m', 350, i) = lfg_predict('m', $newest, 350, i)) FROM generate_series(1, 150) i;")
[ "$sess_pred" = t ] || fail "the session opened before the retrain does not predict with the new version ($sess_pred)"

echo "cron: OK in $(( $(date +%s) - t0 ))s (first run finished ${waited}s after the start): job '$job' ran $runs time(s), succeeded;" \
  "version 1 (300 users, $v1_rows ratings) -> $newest (400 users, $all_rows ratings: $train_rows train, $val_rows validation," \
  "${train_s}s); validation RMSE $prev_rmse -> $new_rmse, activated and logged; lfg_recommend top 10 of a new user" \
  "changed ($same_items of 10 items in common) and equals the new version's in a new session and in one opened before;" \
  "lfg_predict follows (150 items, known user 350)"
