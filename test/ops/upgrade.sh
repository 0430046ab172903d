#!/usr/bin/env bash
# Upgrade from 0.1.0: CREATE EXTENSION lfg VERSION '0.1.0', train models and
# record what they serve, ALTER EXTENSION lfg UPDATE to the default version,
# then check that the models serve exactly the same answers, that the 0.2.0
# objects work on the upgraded database (lfg_active_version,
# lfg.model_versions, lfg_activate, lfg_rollback, lfg_retrain), and that the
# upgraded extension's objects are those of a fresh CREATE EXTENSION lfg
# (members, functions, tables, views, triggers, comments, privileges,
# configuration tables, \dx+).
# Usage: bash test/ops/upgrade.sh   (port: LFG_OPS_UPGRADE_PORT, default 54352)
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/ops/lib.sh

port=${LFG_OPS_UPGRADE_PORT:-54352}
t0=$(date +%s)
ops_start upgrade "$port"
work=$LFG_CLUSTER_DIR

default_version=$(q postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'lfg'")
[ "$default_version" = 0.2.0 ] || fail "the installed lfg's default_version is '$default_version', not 0.2.0"
q postgres -c "CREATE DATABASE lfg_upgraded" -c "CREATE DATABASE lfg_fresh" >/dev/null

# 0.1.0: models and the answers they serve
q lfg_upgraded -c "CREATE EXTENSION lfg VERSION '0.1.0'" \
  -v users=300 -v items=120 -v n=12000 -v seed=31 -v first=300 -f test/ops/data.sql >/dev/null ||
  fail "setting up the 0.1.0 database failed"
q lfg_upgraded >/dev/null <<'SQL' || fail "training the 0.1.0 models failed"
INSERT INTO lfg.models (name, model)
  SELECT 'gen', lfg_fit(user_id, item_id, rating, age, gender, job,
                        '{"hidden": [32, 32], "factors": 8, "epochs": 20, "seed": 1}')
  FROM training_ratings;
-- 'bias': two versions; 0.1.0 serves the newest
INSERT INTO lfg.models (name, model)
  SELECT 'bias', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 8, "epochs": 10}') FROM ratings;
INSERT INTO lfg.models (name, model)
  SELECT 'bias', lfg_fit(user_id, item_id, rating, '{"kind": "biassvd", "factors": 16, "epochs": 15}') FROM ratings;
SQL
q lfg_upgraded -v versioned=bias -f test/ops/probe.sql >/dev/null || fail "recording the answers failed"
check lfg_upgraded "the database starts at 0.1.0, without the 0.2.0 objects" \
  "SELECT extversion = '0.1.0' AND to_regproc('lfg_active_version') IS NULL AND to_regclass('lfg.active') IS NULL
     FROM pg_extension WHERE extname = 'lfg'"
check lfg_upgraded "0.1.0 serves the newest version of 'bias'" \
  "SELECT bool_and(a.score = b.score) AND count(*) > 0 FROM recorded a JOIN recorded b USING (model, id, item_id)
    WHERE a.fn = 'predict' AND b.fn = 'predict_v2'"
check lfg_upgraded "the two versions of 'bias' predict differently" \
  "SELECT count(*) > 0 FROM recorded a JOIN recorded b USING (model, id, item_id)
    WHERE a.fn = 'predict_v1' AND b.fn = 'predict_v2' AND a.score <> b.score"
n_answers=$(q lfg_upgraded -c "SELECT count(*) FROM recorded")
mismatch_sql="SELECT count(*) FROM recorded r FULL JOIN answers a
  ON a.model = r.model AND a.fn = r.fn AND a.id = r.id AND a.item_id IS NOT DISTINCT FROM r.item_id
  WHERE r.model IS NULL OR a.model IS NULL OR a.score IS DISTINCT FROM r.score OR a.factors IS DISTINCT FROM r.factors"

# The upgrade, in a session whose cache already holds the models, which then
# serves again; and a new session
upgrade_out=$(q lfg_upgraded -c "SELECT count(*) FROM answers" -c "ALTER EXTENSION lfg UPDATE" -c "$mismatch_sql") ||
  fail "ALTER EXTENSION lfg UPDATE failed"
[ "$(echo "$upgrade_out" | tail -n 1)" = 0 ] ||
  fail "after the upgrade, the session that served before it gives $(echo "$upgrade_out" | tail -n 1) of $n_answers answers differently"
check lfg_upgraded "the extension is now at the default version" \
  "SELECT extversion = '$default_version' FROM pg_extension WHERE extname = 'lfg'"
mismatch=$(q lfg_upgraded -c "$mismatch_sql")
[ "$mismatch" = 0 ] || fail "after the upgrade, $mismatch of $n_answers answers differ, e.g.:
$(q lfg_upgraded -c "${mismatch_sql/count(*)/r.model, r.fn, r.id, r.item_id, r.score, a.score} LIMIT 10")"

# The 0.2.0 objects on the upgraded database
check lfg_upgraded "lfg_active_version is the newest version when nothing was activated" \
  "SELECT lfg_active_version('gen') = 1 AND lfg_active_version('bias') = 2 AND lfg_active_version('none') IS NULL
      AND (SELECT count(*) = 0 FROM lfg.active)"
check lfg_upgraded "lfg.model_versions lists the three versions, the newest of each name active" \
  "SELECT array_agg(format('%s/%s/%s/%s/%s', name, version, kind, active, factors) ORDER BY name, version)
        = '{bias/1/biassvd/f/8,bias/2/biassvd/t/16,gen/1/lfg/t/8}'
      AND bool_and(bytes > 0 AND n_users = 300 AND n_items = 120 AND activated_at IS NULL)
     FROM lfg.model_versions"
check lfg_upgraded "lfg_activate('bias', 1) returns 2, and serving follows" \
  "SELECT lfg_activate('bias', 1) = 2"
check lfg_upgraded "'bias' now serves version 1" \
  "SELECT lfg_active_version('bias') = 1 AND bool_and(r.score = lfg_predict('bias', r.id, r.item_id)) AND count(*) > 0
     FROM recorded r WHERE r.fn = 'predict_v1'"
check lfg_upgraded "lfg_activate('bias', 2) then lfg_rollback('bias') returns 1" \
  "SELECT lfg_activate('bias', 2) = 1 AND lfg_rollback('bias') = 1"
check lfg_upgraded "after the rollback 'bias' serves version 1" \
  "SELECT lfg_active_version('bias') = 1 AND (SELECT active FROM lfg.model_versions WHERE name = 'bias' AND version = 1)"
q lfg_upgraded -c "INSERT INTO ratings SELECT user_id, item_id, rating FROM lfg_synthetic_ratings(300, 120, 3000, 32)" \
  -c "CALL lfg_retrain('gen', 'training_ratings', NULL, tolerance => 1.0)" >/dev/null ||
  fail "lfg_retrain failed on the upgraded database"
check lfg_upgraded "lfg_retrain made version 2 of 'gen' with version 1's options, active, and logged it" \
  "SELECT lfg_active_version('gen') = 2
      AND (SELECT options FROM lfg.models WHERE name = 'gen' AND version = 2) = (SELECT options FROM lfg.models WHERE name = 'gen' AND version = 1)
      AND (SELECT (metrics->>'rows')::int FROM lfg.models WHERE name = 'gen' AND version = 2) > 12000 * 0.9
      AND (SELECT count(*) = 1 AND bool_and(previous_version = 1 AND new_version = 2 AND activated
                AND train_rows + validation_rows = 15000 AND previous_rmse > 0 AND new_rmse > 0)
             FROM lfg.retrain_log)"
check lfg_upgraded "'gen' serves version 2 after the retrain" \
  "SELECT bool_and(lfg_predict('gen', u, i) = lfg_predict('gen', 2, u, i))
      AND bool_or(lfg_predict('gen', u, i) <> lfg_predict('gen', 1, u, i))
     FROM generate_series(1, 300, 7) u, generate_series(1, 120, 5) i"

# The upgraded objects against a fresh CREATE EXTENSION
q lfg_fresh -c "CREATE EXTENSION lfg" >/dev/null
cat >"$work/objects.sql" <<'SQL'
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'lfg'),
members AS (
  SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'lfg')
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
UNION ALL
SELECT format('extension version=%s relocatable=%s schema=%s config=%s condition=%s', e.extversion,
              e.extrelocatable, e.extnamespace::regnamespace,
              (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(e.extconfig) c),
              (SELECT array_agg(x ORDER BY x) FROM unnest(e.extcondition) x))
  FROM pg_extension e WHERE e.extname = 'lfg'
UNION ALL
SELECT format('schema %s acl=%s comment=%s', nspname, nspacl, obj_description(oid, 'pg_namespace'))
  FROM pg_namespace WHERE nspname = 'lfg'
UNION ALL
-- functions, procedures, aggregates: signature, result, attributes, body
SELECT format('function %s kind=%s returns=%s vol=%s par=%s strict=%s secdef=%s leak=%s cost=%s rows=%s '
              'config=%s acl=%s bin=%s src=%s defaults=%s comment=%s',
              p.oid::regprocedure, p.prokind, pg_get_function_result(p.oid), p.provolatile, p.proparallel,
              p.proisstrict, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig, p.proacl,
              p.probin, md5(p.prosrc), pg_get_expr(p.proargdefaults, 0), obj_description(p.oid, 'pg_proc'))
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT format('function %s args=%s', p.oid::regprocedure, pg_get_function_arguments(p.oid))
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT format('aggregate %s trans=%s final=%s combine=%s serial=%s deserial=%s stype=%s kind=%s init=%s',
              a.aggfnoid::regprocedure, a.aggtransfn::regprocedure, a.aggfinalfn::regprocedure,
              a.aggcombinefn::regprocedure, a.aggserialfn::regprocedure, a.aggdeserialfn::regprocedure,
              a.aggtranstype::regtype, a.aggkind, a.agginitval)
  FROM pg_aggregate a JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = a.aggfnoid
UNION ALL
-- relations of schema lfg (tables, views, sequences, indexes)
SELECT format('relation %s kind=%s persistence=%s options=%s acl=%s comment=%s', c.oid::regclass, c.relkind,
              c.relpersistence, c.reloptions, c.relacl, obj_description(c.oid, 'pg_class'))
  FROM pg_class c JOIN rels r ON r.oid = c.oid
UNION ALL
SELECT format('column %s.%s #%s type=%s notnull=%s storage=%s default=%s identity=%s generated=%s comment=%s',
              a.attrelid::regclass, a.attname,
              row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
              format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attstorage,
              pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
              col_description(a.attrelid, a.attnum))
  FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %s.%s %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
  FROM pg_constraint co JOIN rels r ON r.oid = co.conrelid
UNION ALL
SELECT format('index %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN rels r ON r.oid = i.indrelid
UNION ALL
SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN rels r ON r.oid = c.oid WHERE c.relkind = 'v'
UNION ALL
SELECT format('sequence %s type=%s start=%s inc=%s max=%s min=%s cache=%s cycle=%s owned_by=%s',
              s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin,
              s.seqcache, s.seqcycle, (SELECT d.refobjid::regclass || '.' || a.attname
                                         FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                        WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                                          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
  FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
UNION ALL
-- privileges granted by the extension's scripts (pg_dump compares against them)
SELECT format('init_privs %s type=%s privs=%s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
              ip.privtype, ip.initprivs)
  FROM pg_init_privs ip JOIN members m ON m.classid = ip.classoid AND m.objid = ip.objoid
ORDER BY 1;
SQL
q lfg_upgraded -f "$work/objects.sql" >"$work/objects_upgraded.txt"
q lfg_fresh -f "$work/objects.sql" >"$work/objects_fresh.txt"
n_objects=$(wc -l <"$work/objects_fresh.txt")
n_members=$(grep -c '^member ' "$work/objects_fresh.txt" || true)
# the 0.2.0 objects of the spec are there (so that the comparison is not vacuous)
for obj in "table lfg.models" "table lfg.active" "table lfg.retrain_log" "view lfg.model_versions" \
           "function lfg_active_version(text)" "function lfg_activate(text,integer)" \
           "function lfg_rollback(text)" "function lfg_drop_old(text,integer)" \
           "function lfg_retrain(text,text,jsonb,double precision,double precision" \
           "function lfg_recommend(text,jsonb,double precision,text,text,integer,bigint[],bigint[])" \
           "function lfg_predict(text,integer,bigint,bigint)"; do
  grep -qF "member $obj" "$work/objects_fresh.txt" || fail "a fresh CREATE EXTENSION lfg has no $obj"
done
grep -q '^function lfg_retrain(.* kind=p ' "$work/objects_fresh.txt" || fail "lfg_retrain is not a procedure"
if ! diff -u "$work/objects_fresh.txt" "$work/objects_upgraded.txt" >"$work/objects.diff"; then
  fail "the upgraded extension's objects differ from a fresh CREATE EXTENSION lfg (- fresh, + upgraded):
$(cat "$work/objects.diff")"
fi
psql -X -d lfg_upgraded -c '\dx+ lfg' >"$work/dx_upgraded.txt"
psql -X -d lfg_fresh -c '\dx+ lfg' >"$work/dx_fresh.txt"
diff -u "$work/dx_fresh.txt" "$work/dx_upgraded.txt" >"$work/dx.diff" ||
  fail "\\dx+ lfg differs between a fresh install and the upgraded one:
$(cat "$work/dx.diff")"

n_functions=$(grep -c '^function .* kind=' "$work/objects_fresh.txt" || true)
echo "upgrade: OK in $(( $(date +%s) - t0 ))s: 0.1.0 -> $default_version with ALTER EXTENSION lfg UPDATE;" \
  "$n_answers recorded answers of 3 model versions (lfg, biassvd x2) exactly equal after it, in the session" \
  "that served before and in a new one; lfg_active_version, lfg.model_versions, lfg_activate, lfg_rollback and" \
  "lfg_retrain (version 2 of 'gen', logged) work; the upgraded objects equal a fresh install's:" \
  "$n_objects catalog lines ($n_members members, $n_functions functions) and \\dx+ lfg identical"
