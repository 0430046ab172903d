#!/usr/bin/env bash
# Plot precision@10 (and NDCG@10) against the number of revealed ratings n
# for each method, from the table test/bench/ranking.sh writes with
# RANKING_TSV=FILE (method, n, p10, r20, ndcg10; tab-separated):
#
#   RANKING_TSV=/tmp/ml1m.tsv bash test/bench/ranking.sh --ml1m
#   bash scripts/plot_ranking.sh /tmp/ml1m.tsv doc/ranking-ml1m.png "MovieLens-1m"
#
# Needs gnuplot (Debian: gnuplot-nox, installed by scripts/install-deps.sh).
set -euo pipefail
tsv=${1:?usage: plot_ranking.sh RANKING_TSV OUT.png [TITLE]}
out=${2:?usage: plot_ranking.sh RANKING_TSV OUT.png [TITLE]}
title=${3:-}
command -v gnuplot >/dev/null || { echo "plot_ranking: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
[ -s "$tsv" ] || { echo "plot_ranking: $tsv is empty or missing" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# one data block per method (gnuplot index), in the table's order
awk -F'\t' -v dir="$work" '
  !($1 in seen) { seen[$1] = ++m; name[m] = $1 }
  { rows[seen[$1]] = rows[seen[$1]] $2 "\t" $3 "\t" $5 "\n" }
  END {
    for (j = 1; j <= m; j++) { printf "%s\n\n\n", rows[j] > (dir "/data") ; print name[j] > (dir "/names") }
  }' "$tsv"
n=$(wc -l < "$work/names")
{
  echo "set terminal pngcairo noenhanced size 1200,460 font 'sans,10'"
  echo "set output '$out'"
  echo "set multiplot layout 1,2 title '${title//\'/} (new users: top 10 of the whole catalogue)'"
  echo "set xlabel 'ratings revealed (n)'; set xtics (0, 1, 3, 5, 10); set grid"
  for metric in 2:P@10 3:NDCG@10; do
    col=${metric%%:*}; label=${metric#*:}
    echo "set ylabel '$label'; set yrange [0:*]"
    # one legend, right of the second plot
    if [ "$col" = 2 ]; then echo "unset key"; else echo "set key outside right top font ',9'"; fi
    printf "plot "
    for ((j = 0; j < n; j++)); do
      name=$(sed -n "$((j + 1))p" "$work/names")
      [ $j -gt 0 ] && printf ", "
      printf "'%s' index %d using 1:%s with linespoints lw 2 title '%s'" "$work/data" "$j" "$col" "${name//\'/}"
    done
    echo
  done
  echo "unset multiplot"
} > "$work/plot.gp"
gnuplot "$work/plot.gp"
echo "plot_ranking: wrote $out"
