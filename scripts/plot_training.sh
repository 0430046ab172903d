#!/usr/bin/env bash
# Plot the training curves of svd and biassvd models: the training RMSE of
# each epoch (metrics->'epoch_train_rmse') and its seconds
# (metrics->'epoch_seconds', recorded when the model was inserted by the
# backend that trained it), for the active or newest version of each model
# named, read from lfg.models through libpq's environment (PGHOST, ...):
#
#   bash scripts/plot_training.sh OUT.png MODEL [MODEL ...]
#
# Needs gnuplot (Debian: gnuplot-nox, installed by scripts/install-deps.sh).
set -euo pipefail
out=${1:?usage: plot_training.sh OUT.png MODEL [MODEL ...]}
shift
[ $# -gt 0 ] || { echo "usage: plot_training.sh OUT.png MODEL [MODEL ...]" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot_training: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
j=0
for name in "$@"; do
  # epoch, training RMSE, seconds (0 when not recorded), one row per epoch
  psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -v name="$name" > "$work/$j.tsv" <<'SQL'
SELECT e.n, e.rmse, coalesce((m.metrics->'epoch_seconds'->>(e.n::int - 1))::float8, 0)
  FROM (SELECT metrics FROM lfg.models WHERE name = :'name'
         ORDER BY version = coalesce((SELECT version FROM lfg.active WHERE active.name = :'name'), -1) DESC,
                  version DESC LIMIT 1) m,
       jsonb_array_elements_text(m.metrics->'epoch_train_rmse') WITH ORDINALITY AS e(rmse, n)
 ORDER BY e.n;
SQL
  [ -s "$work/$j.tsv" ] || { echo "plot_training: model \"$name\" has no epoch_train_rmse (svd and biassvd models of lfg 0.2.0 have)" >&2; exit 2; }
  j=$((j + 1))
done
{
  echo "set terminal pngcairo noenhanced size 1200,420 font 'sans,10'"
  echo "set output '$out'"
  echo "set multiplot layout 1,2 title 'Training curves'"
  echo "set xlabel 'epoch'; set grid; set key top right"
  for panel in 2:"training RMSE (running, during the epoch)" 3:"seconds per epoch"; do
    col=${panel%%:*}; label=${panel#*:}
    echo "set ylabel '$label'"
    printf "plot "
    j=0
    for name in "$@"; do
      [ $j -gt 0 ] && printf ", "
      printf "'%s' using 1:%s with linespoints lw 2 title '%s'" "$work/$j.tsv" "$col" "${name//\'/}"
      j=$((j + 1))
    done
    printf "\n"
  done
  echo "unset multiplot"
} > "$work/plot.gp"
gnuplot "$work/plot.gp"
echo "plot_training: wrote $out"
