#!/usr/bin/env bash
# Retraining from pg_cron on a cluster that authenticates like one made by
# Debian's pg_createcluster (peer on the socket, scram-sha-256 on TCP
# localhost, no trust: scripts/cluster.sh LFG_AUTH=debian), with the recipe
# of doc/operations.md: cron.use_background_workers = on, so jobs run in
# background workers and never log in through libpq.
#
# Two jobs, scheduled with cron.schedule for the same minute:
#   - one owned by the superuser retrains model m (version 1 from a plain
#     lfg_fit, then new ratings arrive) with the default tolerance: version 2
#     is activated, and lfg_recommend and lfg_predict serve it, also in a
#     session opened before the retrain;
#   - one owned by app, a non-superuser that logs in with a password, retrains
#     model m_app (version 1 from lfg_retrain) with keep => 1: version 2 is
#     activated and version 1 pruned.
# Each run is found in lfg.retrain_log by cron.job_run_details.job_pid; a
# second run of a job (if the wait crossed a minute) must be a skip.
# Needs lfg 0.2.0 installed and postgresql-15-cron.
# Usage: bash test/ops/cron.sh   (port: LFG_OPS_CRON_PORT, default 54350)
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/ops/lib.sh

port=${LFG_OPS_CRON_PORT:-54350}
wait_limit=${LFG_OPS_CRON_WAIT:-150}
job=lfg-retrain-test
app_job=lfg-retrain-app
t0=$(date +%s)

sess_pid=
ops_on_exit() {
  [ -n "$sess_pid" ] && kill "$sess_pid" 2>/dev/null
  psql -X -qAt -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('$job', '$app_job')" >/dev/null 2>&1
}

[ -f "$LFG_PG_BIN/../lib/pg_cron.so" ] || {
  echo "FAIL (test/ops/cron.sh): pg_cron is not installed (apt-get install postgresql-15-cron)" >&2; exit 1; }
LFG_AUTH=debian ops_start cron "$port" "shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on"
check postgres "jobs run in background workers" "SELECT current_setting('cron.use_background_workers') = 'on'"

# The cluster authenticates as Debian's does: no trust anywhere, TCP asks
# for a password, the socket asks the operating system who connects
check postgres "pg_hba.conf has peer and scram-sha-256 and no trust" \
  "SELECT bool_or(type = 'local' AND auth_method = 'peer') AND bool_or(type = 'host' AND auth_method = 'scram-sha-256')
          AND NOT bool_or(auth_method IN ('trust', 'password', 'md5')) FROM pg_hba_file_rules"
: > "$LFG_CLUSTER_DIR/nopass"; chmod 600 "$LFG_CLUSTER_DIR/nopass"
out=$(PGPASSFILE=$LFG_CLUSTER_DIR/nopass psql -X -w -d postgres -c 'SELECT 1' 2>&1) &&
  fail "a TCP connection without a password was accepted"
[[ $out == *"no password supplied"* ]] || fail "a TCP connection without a password failed otherwise: $out"
q postgres -c "CREATE ROLE app LOGIN" >/dev/null
lfg_cluster_password app "app-$RANDOM$RANDOM" || fail "setting app's password failed"
out=$(psql -X -w -h "$LFG_CLUSTER_DIR" -U app -d postgres -c 'SELECT 1' 2>&1) &&
  fail "app logged in over the socket without peer authentication"
[[ $out == *"Peer authentication failed"* ]] || fail "app's socket login failed otherwise: $out"
[ "$(PGUSER=app q postgres -c 'SELECT current_user')" = app ] || fail "app cannot log in over TCP with its password"

# 400 users, 150 items; users 301..400 rate only after version 1
q postgres -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION lfg" \
  -v users=400 -v items=150 -v n=20000 -v seed=7 -v first=300 -f test/ops/data.sql >/dev/null ||
  fail "setting up the database failed"
q postgres >/dev/null <<'SQL' || fail "training version 1 failed"
-- version 1 of m, trained directly (lfg_retrain reuses its options)
INSERT INTO lfg.models (name, model)
  SELECT 'm', lfg_fit(user_id, item_id, rating, age, gender, job,
                      '{"hidden": [32, 32], "factors": 8, "epochs": 30, "seed": 1}')
  FROM training_ratings;
-- app: schedules its own jobs and retrains (doc/operations.md, Privileges)
GRANT USAGE ON SCHEMA cron TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON lfg.models TO app;
GRANT SELECT, INSERT, UPDATE ON lfg.active TO app;
GRANT INSERT ON lfg.retrain_log TO app;
GRANT USAGE ON SEQUENCE lfg.retrain_log_id_seq TO app;
GRANT SELECT ON ratings TO app;
SQL
PGUSER=app q postgres -c "CALL lfg_retrain('m_app', 'ratings', '{\"kind\": \"biassvd\", \"factors\": 8, \"epochs\": 15}')" ||
  fail "app's first lfg_retrain failed"
check postgres "version 1 is active before the retrain" \
  "SELECT lfg_active_version('m') = 1 AND count(*) = 1 FROM lfg.models WHERE name = 'm'"
check postgres "app's version 1 is active" \
  "SELECT lfg_active_version('m_app') = 1 AND count(*) = 1 FROM lfg.models WHERE name = 'm_app'"
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

jobid=$(q postgres -c "SELECT cron.schedule('$job', '* * * * *', \$\$CALL lfg_retrain('m', 'training_ratings')\$\$)")
app_jobid=$(PGUSER=app q postgres -c "SELECT cron.schedule('$app_job', '* * * * *',
  \$\$CALL lfg_retrain('m_app', 'ratings', keep => 1)\$\$)")
check postgres "the jobs belong to postgres and app" \
  "SELECT array_agg(username ORDER BY jobid) = ARRAY['$PGUSER', 'app']::text[] FROM cron.job WHERE jobid IN ($jobid, $app_jobid)"
echo "cron: jobs $jobid ($PGUSER) and $app_jobid (app) scheduled at $(date +%T), waiting for their runs (at most ${wait_limit}s)"
done_runs=0
for i in $(seq 1 $((wait_limit / 2))); do
  done_runs=$(q postgres -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE jobid IN ($jobid, $app_jobid)
                 AND status IN ('succeeded', 'failed')")
  [ "$done_runs" = 2 ] && break
  sleep 2
done
waited=$(( $(date +%s) - t0 ))
[ "$done_runs" = 2 ] || fail "the jobs did not both finish a run after ${wait_limit}s: $(q postgres -c "SELECT * FROM cron.job_run_details")"
q postgres -c "SELECT cron.unschedule($jobid)" -c "SELECT cron.unschedule($app_jobid)" >/dev/null
# a run that started meanwhile finishes before the checks
for i in $(seq 1 60); do
  [ "$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($jobid, $app_jobid) AND status IN ('starting', 'running')")" = 0 ] && break
  sleep 1
done
failed=$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid IN ($jobid, $app_jobid) AND status <> 'succeeded'")
[ "$failed" = 0 ] || fail "$failed run(s) did not succeed: $(q postgres -c "SELECT jobid, status, return_message FROM cron.job_run_details WHERE jobid IN ($jobid, $app_jobid)")"
runs=$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid")
app_runs=$(q postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $app_jobid")
[ "$runs" = 1 ] && [ "$app_runs" = 1 ] || echo "cron: note: $runs and $app_runs runs before the jobs were unscheduled"
check postgres "the jobs are unscheduled" "SELECT count(*) = 0 FROM cron.job WHERE jobname IN ('$job', '$app_job')"

# What each run decided: the lfg.retrain_log row written by the run's
# backend (job_pid) while it ran. pg_cron records only the command tag.
# (end_time is not a bound: in background-worker mode pg_cron may stamp it
# when it starts waiting for the worker's messages, before the run ends;
# nor exactly is start_time: the launcher stamps it after it starts the
# worker, which has begun the run's transaction by then in a busy machine,
# 5 ms before it in one CI run, so the run may start up to 10 s earlier)
run_log="FROM cron.job_run_details AS d JOIN lfg.retrain_log AS l
  ON l.backend_pid = d.job_pid
  AND l.started_at BETWEEN d.start_time - interval '10 seconds' AND d.start_time + interval '1 minute'"
runs_seen=$(q postgres -F ' ' -c "SELECT d.jobid, d.runid, d.job_pid, d.status, d.return_message, d.start_time, d.end_time,
    l.backend_pid, l.started_at, l.finished_at, l.outcome
  FROM cron.job_run_details AS d FULL JOIN lfg.retrain_log AS l ON l.backend_pid = d.job_pid
 WHERE d.jobid IN ($jobid, $app_jobid) OR d.jobid IS NULL ORDER BY d.runid, l.id")
check postgres "every run has its lfg.retrain_log row, and return_message is the command tag (runs and log rows: $runs_seen)" \
  "SELECT count(*) = $((runs + app_runs)) AND bool_and(d.return_message = 'CALL') $run_log WHERE d.jobid IN ($jobid, $app_jobid)"
check postgres "the first run of each job activated version 2, the later ones (if any) skipped" \
  "SELECT bool_and(CASE WHEN d.runid = f.runid THEN l.outcome = 'activated' AND l.new_version = 2
                        ELSE l.outcome = 'skipped' AND l.new_version IS NULL END)
     $run_log JOIN (SELECT jobid, min(runid) AS runid FROM cron.job_run_details GROUP BY jobid) AS f USING (jobid)
    WHERE d.jobid IN ($jobid, $app_jobid)"
decision=$(q postgres -c "SELECT l.decision $run_log WHERE d.jobid = $jobid ORDER BY d.runid LIMIT 1")
app_decision=$(q postgres -c "SELECT l.decision $run_log WHERE d.jobid = $app_jobid ORDER BY d.runid LIMIT 1")
grep -qF "cron job $jobid: NOTICE: lfg_retrain \"m\": activated version 2" "$LFG_CLUSTER_DIR/server.log" ||
  fail "the run's NOTICE is not in the server log: $(grep "cron job $jobid" "$LFG_CLUSTER_DIR/server.log")"

# app's job: version 2 active, version 1 pruned by keep => 1
check postgres "app's job activated version 2 of m_app and pruned version 1" \
  "SELECT array_agg(version) = '{2}' AND lfg_active_version('m_app') = 2 FROM lfg.models WHERE name = 'm_app'"
check postgres "app's first run logged the pruning and a gated comparison against its own version 1" \
  "SELECT l.pruned = 1 AND l.previous_version = 1 AND l.decision LIKE 'activated version 2: validation RMSE % against % of version 1 %'
     $run_log WHERE d.jobid = $app_jobid ORDER BY d.runid LIMIT 1"

# Versions of m: the run stored version 2 and activated it; a later run skipped
newest=$(q postgres -c "SELECT max(version) FROM lfg.models WHERE name = 'm'")
[ "$newest" = 2 ] || fail "expected version 2 after $runs run(s) of unchanged data, the newest is $newest"
check postgres "lfg_active_version is the new version" "SELECT lfg_active_version('m') = $newest"
check postgres "lfg.active holds the new version" "SELECT count(*) = 1 AND min(version) = $newest FROM lfg.active WHERE name = 'm'"
check postgres "lfg.model_versions marks only the new version active" \
  "SELECT array_agg(version ORDER BY version) = ARRAY[$newest] FROM lfg.model_versions WHERE name = 'm' AND active"
check postgres "the new version was trained on the new ratings (400 users, version 1: 300)" \
  "SELECT (SELECT metrics->>'users' FROM lfg.models WHERE name = 'm' AND version = 1) = '300'
      AND (SELECT metrics->>'users' FROM lfg.models WHERE name = 'm' AND version = $newest) = '400'"

# lfg.retrain_log: version 1 (a plain lfg_fit, which saw the validation
# rows) is not compared, so the default tolerance does not refuse version 2
check postgres "lfg.retrain_log records the decision of the run" \
  "SELECT previous_version = 1 AND new_version = 2 AND activated AND outcome = 'activated'
          AND decision LIKE 'activated version 2: validation RMSE %; not compared with version 1 %'
          AND tolerance = 0.005 AND previous_rmse > 0 AND new_rmse > 0
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

echo "cron: OK in $(( $(date +%s) - t0 ))s (first runs finished ${waited}s after the start) on a cluster with Debian's pg_hba" \
  "(peer, scram-sha-256) and cron.use_background_workers = on: job '$job' ($PGUSER) ran $runs time(s), job '$app_job' (app)" \
  "$app_runs time(s), all succeeded; m: version 1 (plain lfg_fit, 300 users, $v1_rows ratings) -> 2 (400 users, $all_rows ratings:" \
  "$train_rows train, $val_rows validation, ${train_s}s), validation RMSE $prev_rmse (version 1, not compared) -> $new_rmse;" \
  "decisions: '$decision' / '$app_decision'; lfg_recommend top 10 of a new user changed ($same_items of 10 items in common)" \
  "and equals the new version's in a new session and in one opened before; lfg_predict follows (150 items, known user 350)"
