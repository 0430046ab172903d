#!/usr/bin/env bash
# The Debian package: build postgresql-NN-lfg with pg_buildext (debian/,
# `dpkg-buildpackage -us -uc -b`) in a copy of the source tree, so the tree
# itself is left alone, and put the .deb files in OUTDIR (default: a new
# directory under /tmp, printed at the end).
# With --test (as root): then install the package for the system's
# PostgreSQL 15 with dpkg, smoke-test it on a throwaway cluster of that
# server (CREATE EXTENSION, the update from 0.1.0, training, serving,
# lfg_retrain), and remove it again (dpkg -r), whatever happened, so that a
# `make install` afterwards is not mixed with packaged files.
# Needs debhelper and postgresql-server-dev-all (scripts/install-deps.sh).
# Usage: bash scripts/deb.sh [--test] [OUTDIR]   (cluster port: LFG_DEB_PORT, default 54353)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
test=false
if [ "${1:-}" = --test ]; then test=true; shift; fi
out=${1:-$(mktemp -d /tmp/lfg-deb.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/lfg-debsrc.XXXXXX)
pkg=postgresql-15-lfg
installed=false
cleanup() {
  local rc=$?
  set +e
  declare -F lfg_cluster_stop >/dev/null && lfg_cluster_stop
  if $installed; then
    dpkg -r "$pkg" >/dev/null 2>&1 && echo "deb: $pkg removed"
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP

# the tracked and untracked (not ignored) files, as they are in the tree
mkdir "$work/lfg"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    tar cf - --null --ignore-failed-read -T - 2>/dev/null | tar xf - -C "$work/lfg"
else
  cp -a . "$work/lfg"
fi
start=$(date +%s)
if ! (cd "$work/lfg" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  echo "deb: dpkg-buildpackage failed:" >&2; tail -n 60 "$work/build.log" >&2; exit 1
fi
debs=("$work"/*.deb)
mv "${debs[@]}" "$out"/
echo "deb: built in $(( $(date +%s) - start ))s: $(cd "$out" && ls ./*.deb | tr '\n' ' ')in $out"
$test || exit 0

# install, smoke-test, remove
[ "$(id -u)" = 0 ] || { echo "deb: --test installs the package: run as root" >&2; exit 1; }
deb=$(ls "$out"/${pkg}_*.deb)
contents=$(dpkg-deb -c "$deb")
grep -q '/usr/lib/postgresql/15/lib/lfg.so$' <<<"$contents" || { echo "deb: $deb has no lfg.so" >&2; exit 1; }
installed=true
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { echo "deb: dpkg -i failed:" >&2; cat "$work/dpkg.log" >&2; exit 1; }
for f in /usr/lib/postgresql/15/lib/lfg.so /usr/share/postgresql/15/extension/lfg.control \
         /usr/share/postgresql/15/extension/lfg--0.1.0.sql /usr/share/postgresql/15/extension/lfg--0.2.0.sql \
         /usr/share/postgresql/15/extension/lfg--0.1.0--0.2.0.sql; do
  [ "$(dpkg -S "$f" 2>/dev/null | cut -d: -f1)" = "$pkg" ] || { echo "deb: $f is not installed by $pkg" >&2; exit 1; }
done
export LFG_PG_BIN=/usr/lib/postgresql/15/bin
source scripts/cluster.sh
lfg_cluster_start "${LFG_DEB_PORT:-54353}" >/dev/null || { echo "deb: the cluster did not start" >&2; exit 1; }
export PGOPTIONS="-c client_min_messages=warning"
got=$(psql -X -qAt -v ON_ERROR_STOP=1 -d postgres <<'SQL'
CREATE EXTENSION lfg;
CREATE DATABASE lfg_old;
SELECT extversion FROM pg_extension WHERE extname = 'lfg';
CREATE TABLE ratings AS SELECT * FROM lfg_synthetic_ratings(300, 40, 6000, 1);
CREATE TABLE users AS SELECT u AS user_id, 20 + u % 40 AS age, CASE WHEN u % 2 = 0 THEN 'F' ELSE 'M' END AS gender,
                             (u % 3)::text AS job FROM generate_series(1, 300) AS u;
CREATE VIEW training AS SELECT r.*, u.age, u.gender, u.job FROM ratings r JOIN users u USING (user_id);
CALL lfg_retrain('movies', 'training', '{"kind": "lfg", "hidden": [8, 8], "factors": 4, "epochs": 3, "pretrain_epochs": 3}');
CALL lfg_retrain('movies', 'training');
SELECT string_agg(outcome, ',' ORDER BY id) FROM lfg.retrain_log;
SELECT count(*) FROM lfg_recommend('movies', '{"1": 5, "2": 3}', 30, 'F', '1', 5);
SELECT (lfg_model_info(model)).demographics->>'genders' FROM lfg.models WHERE name = 'movies';
SELECT lfg_build_info() IS NOT NULL;
SQL
) || { echo "deb: the smoke test failed" >&2; exit 1; }
expected="0.2.0
activated,skipped
5
[\"F\", \"M\"]
t"
[ "$got" = "$expected" ] || { echo "deb: the smoke test gave:"$'\n'"$got"$'\n'"instead of:"$'\n'"$expected" >&2; exit 1; }
upd=$(psql -X -qAt -v ON_ERROR_STOP=1 -d lfg_old -c "CREATE EXTENSION lfg VERSION '0.1.0'" -c "ALTER EXTENSION lfg UPDATE" \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'lfg'") || { echo "deb: the update from 0.1.0 failed" >&2; exit 1; }
[ "$upd" = 0.2.0 ] || { echo "deb: the update from 0.1.0 gave $upd" >&2; exit 1; }
lfg_cluster_stop
installed=false
dpkg -r "$pkg" >"$work/dpkg.log" 2>&1 || { echo "deb: dpkg -r failed:" >&2; cat "$work/dpkg.log" >&2; exit 1; }
[ ! -e /usr/lib/postgresql/15/lib/lfg.so ] || { echo "deb: lfg.so is still there after dpkg -r" >&2; exit 1; }
echo "deb: $pkg installed with dpkg, smoke-tested on PostgreSQL 15 (CREATE EXTENSION 0.2.0, update from 0.1.0," \
  "lfg_retrain activated then skipped, lfg_recommend, lfg_model_info), and removed; the .deb is in $out"
