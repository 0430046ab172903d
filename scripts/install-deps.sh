#!/usr/bin/env bash
# Install what lfg needs to build, test and run on Debian 12 (as root).
# --deb: also what building the Debian package needs (scripts/deb.sh).
set -euo pipefail
PKGS=(build-essential postgresql-15 postgresql-server-dev-15 libopenblas-dev liblapacke-dev
      libopenblas0-serial postgresql-15-cron libipc-run-perl python3 gnuplot-nox)   # python3: scripts/messages.py
[ "${1:-}" = --deb ] && PKGS+=(postgresql-server-dev-all debhelper)   # pg_buildext's dh addon, dh
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "lfg: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "lfg: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian creates and starts a default cluster; lfg's scripts use their own.
echo "lfg: dependencies present"
