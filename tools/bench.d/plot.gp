# Bar chart of the benchmark's headline numbers, one panel per unit: the
# bar is the median, the whisker the min..max of the repetitions, the red
# dash the target. Called by tools/bench with `dir` (holding
# plot-<panel>.tsv: label, median, min, max, target) and `out`.
set terminal pngcairo size 1400,1100 font "sans,9"
set output out
set datafile separator "\t"
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -25 nomirror
set key off
set yrange [0:*]
set offsets 0.5, 0.5, 0, 0

panels = "rate latency percent memory"
unit(p) = p eq "rate" ? "jobs per second" : p eq "latency" ? \
  "milliseconds" : p eq "percent" ? "percent" : "megabytes (RSS)"
# tools/bench passes the panels that have data; an empty file would stop
# gnuplot.
present = exists("panels_present") ? panels_present : panels
count = words(present)
set multiplot layout (count + 1) / 2, (count > 1 ? 2 : 1) \
  title "imagen-worker benchmark (median, min..max, target in red)"
do for [i = 1:count] {
  p = word(present, i)
  set title unit(p)
  file = sprintf("%s/plot-%s.tsv", dir, p)
  plot file using 0:2:xticlabels(1) with boxes lc rgb "#4a7ab5", \
       file using 0:2:3:4 with yerrorbars lc rgb "black" pt -1, \
       file using 0:5 with points lc rgb "red" pt 5 ps 1.2
}
unset multiplot
