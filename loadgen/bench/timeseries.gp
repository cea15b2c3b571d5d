# timeseries.gp -- per-second deliveries, p99 latency and CPU of one or more
# parley-loadgen runs, from their --csv files: one line per run.
#   gnuplot -e "files='a.csv b.csv'; labels='parley floor'; title='...'; out='x.svg'" timeseries.gp
# CSV columns used: 1 t_s, 8 received_per_s, 11 p99_ms, 14 server_cpu_pct,
# 16 loadgen_cpu_pct. Header lines are not numbers, so gnuplot skips them.
set terminal svg size 1000,800 dynamic font 'sans,12' background rgb 'white'
set output out
set datafile separator comma
set grid
set key outside right top
set lmargin 12
set rmargin 30  # room for the key, the same in every panel so the time axes line up
set yrange [0:*]
n = words(files)
set multiplot layout 3,1 title title
set ylabel 'deliveries received per s'
plot for [i=1:n] word(files,i) using 1:8 with linespoints lw 2 pt 7 ps 0.5 lc i title word(labels,i)
# A second with no timed delivery (warm-up) has p99 0: not a point.
set ylabel 'p99 latency (ms)'
plot for [i=1:n] word(files,i) using 1:($11 > 0 ? $11 : NaN) with linespoints lw 2 pt 7 ps 0.5 lc i title word(labels,i)
set ylabel 'CPU (% of one core)'
set xlabel 'seconds since the start of the run'
plot for [i=1:n] word(files,i) using 1:14 with lines lw 2 lc i title word(labels,i).' server', \
     for [i=1:n] word(files,i) using 1:16 with lines lw 1 dt 2 lc i title word(labels,i).' loadgen'
unset multiplot
