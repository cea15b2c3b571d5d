# compare.gp -- parley against the floor: one panel of paired bars per measure.
#   gnuplot -e "panels=2; file1='a.dat'; ylabel1='...'; log1=1; file2=...; out='x.svg'" compare.gp
# Each data file has rows: "label" parley floor ("?" where a run is missing);
# logN=1 draws panel N on a log scale.
set terminal svg size 380*panels,420 dynamic font 'sans,12' background rgb 'white'
set output out
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set grid ytics
set key below horizontal
set xtics nomirror
set multiplot layout 1,panels title 'parley against the floor'
do for [i=1:panels] {
    set ylabel value('ylabel'.i)
    if (value('log'.i)) { set logscale y; set yrange [*:*] } else { unset logscale y; set yrange [0:*] }
    plot value('file'.i) using 2:xtic(1) title 'parley' lc rgb '#3070b0', \
         '' using 3 title 'floor' lc rgb '#c0c0c0'
}
unset multiplot
