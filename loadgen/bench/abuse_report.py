#!/usr/bin/env python3
"""abuse_report.py RESULTS -- the tables of the "Abusive clients" section of
docs/benchmarks.md, from the runs scripts/bench-abuse made (RESULTS/runs.tsv
and the JSON reports beside it): per scenario and abuser kind, the ordinary
clients' delivery p99 in every repetition, its median, and the ratio of that
median to the median without an abuser; the same for transit (from the real
write, so without the load generator's own lateness: docs/loadgen.md,
"Transit"); how many of parley's event loop iterations took over 1 ms and
over 5 ms; then what became of the abuser, and the others' transit p99
while its connections were open against apart from them, within the same
runs."""
import csv
import json
import math
import os
import random
import statistics
import sys


def load(results):
    runs = {}
    with open(os.path.join(results, "runs.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = os.path.join(results, row["report"])
            if not os.path.exists(path):
                continue
            with open(path) as rf:
                row["r"] = json.load(rf)
            runs.setdefault((row["scenario"], row["abuse"]), []).append(row)
    return runs


MIN_SPLIT = 1000  # deliveries, for a p99 during or apart to be shown


def fmt(v):
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def p99s(rows, key):
    out = []
    for row in rows:
        r = row["r"]
        h = {"last": lambda: r["fanout"]["last_receiver_ms"], "transit": lambda: r["transit_ms"]}.get(
            key, lambda: r["latency_ms"])()
        out.append(h["p99"])
    return out


def paired(rows, base_rows, key):
    """Each repetition's p99 with the abuser over the p99 without it in the
    same repetition (run right before it, on the same machine state): their
    geometric mean and a 90 % bootstrap interval of it, or None."""
    base = {row["rep"]: v for row, v in zip(base_rows, p99s(base_rows, key))}
    logs = [math.log(v / base[row["rep"]]) for row, v in zip(rows, p99s(rows, key))
            if base.get(row["rep"]) and v > 0]
    if len(logs) < 2:
        return None
    rng = random.Random(1)  # the same interval for the same runs
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(2000))
    return (math.exp(statistics.fmean(logs)), math.exp(means[100]), math.exp(means[1899]), len(logs))


def fmt_paired(p):
    return f"×{p[0]:.2f} ({p[1]:.2f}–{p[2]:.2f}, {p[3]} pairs)" if p else "–"


def main():
    results = sys.argv[1]
    runs = load(results)
    scenarios = []
    for sc, _ in runs:
        if sc not in scenarios:
            scenarios.append(sc)
    for sc in scenarios:
        kinds = [k for (s, k) in runs if s == sc]
        keys = [("all", "delivery p99")] + ([("last", "last-receiver p99")] if sc == "fanout" else [])
        if all("transit_ms" in row["r"] for k in kinds for row in runs[(sc, k)]):
            keys.append(("transit", "transit p99"))
        print(f"\n#### {sc}\n")
        head = "| abuser | " + " | ".join(
            f"{label}, each run (ms) | median | × none" for _, label in keys
        ) + " | loop iterations over 1 ms / over 5 ms, median per run | others' result " \
            "| load before / other processes' cores during, each run |"
        print(head)
        print("|---" * (head.count("|") - 1) + "|")
        base = {key: statistics.median(p99s(runs[(sc, "none")], key)) for key, _ in keys} if (sc, "none") in runs else {}
        for k in kinds:
            rows = runs[(sc, k)]
            cells = []
            for key, _ in keys:
                vals = p99s(rows, key)
                med = statistics.median(vals)
                ratio = f"{med / base[key]:.2f}" if base.get(key) else "–"
                cells.append(f"{' / '.join(fmt(v) for v in vals)} | {fmt(med)} | {ratio}")
            verdicts = sorted({row["r"]["verdict"] for row in rows})
            machine = ", ".join(f"{row['load1']} / {row.get('foreign_cores', '?')}" for row in rows)
            loops = "–"
            if all(row.get("iter_over_1ms") not in (None, "") for row in rows):
                o1 = statistics.median(int(row["iter_over_1ms"]) for row in rows)
                o5 = statistics.median(int(row["iter_over_5ms"]) for row in rows)
                loops = f"{o1:g} / {o5:g}"
            print(f"| {k} | " + " | ".join(cells) + f" | {loops} | {'; '.join(verdicts)} | {machine} |")
        print()
        print("| abuser | connections | closed by the server (codes) | closed after (ms, mean / max) "
              "| sent | ok | rate_limited | its messages read by the others |")
        print("|---|---|---|---|---|---|---|---|")
        for k in kinds:
            if k == "none":
                continue
            rows = runs[(sc, k)]
            a = [row["r"]["abuser"] for row in rows]
            n = len(a)
            codes = {}
            for x in a:
                for c, v in x["close_codes"].items():
                    codes[c] = codes.get(c, 0) + v
            means = [x["close_after_ms_mean"] for x in a if x["closed_by_server"]]
            maxes = [x["close_after_ms_max"] for x in a if x["closed_by_server"]]
            closed = sum(x["closed_by_server"] for x in a)
            after = f"{statistics.mean(means):.1f} / {max(maxes):.1f}" if means else "not closed in the run"
            per = lambda f: f"{sum(x[f] for x in a) / n:,.0f}"
            print(f"| {k} | {per('connections')} | {closed / n:.1f} per run "
                  f"({', '.join(f'{c}: {v}' for c, v in sorted(codes.items())) or 'none'}) | {after} "
                  f"| {per('sent')} | {per('acked')} | {per('rate_limited')} | {per('delivered_to_others')} |")
        split = [k for k in kinds if k != "none"
                 and all("others_transit_during_ms" in row["r"]["abuser"] for row in runs[(sc, k)])]
        if split:
            print()
            print("| abuser | deliveries during its connections | transit p99 during, each run (ms) "
                  "| apart, each run (ms) | during ÷ apart, median |")
            print("|---|---|---|---|---|")
            for k in split:
                a = [row["r"]["abuser"] for row in runs[(sc, k)]]
                dur = [x["others_transit_during_ms"] for x in a]
                apa = [x["others_transit_apart_ms"] for x in a]
                share = statistics.mean(d["count"] / max(1, d["count"] + p["count"]) for d, p in zip(dur, apa))
                # a p99 of fewer than MIN_SPLIT deliveries says little (a slow
                # reader is connected throughout: nothing arrives apart)
                ratios = [d["p99"] / p["p99"] for d, p in zip(dur, apa)
                          if d["count"] >= MIN_SPLIT and p["count"] >= MIN_SPLIT and p["p99"]]
                cell = lambda hs: " / ".join(fmt(h["p99"]) if h["count"] >= MIN_SPLIT else "–" for h in hs)
                print(f"| {k} | {100 * share:.1f} % | {cell(dur)} | {cell(apa)} "
                      f"| {f'{statistics.median(ratios):.2f}' if ratios else '–'} |")
        if (sc, "none") in runs:
            print()
            print("| abuser | delivery p99, paired × none (90 % interval) "
                  "| transit p99, paired × none (90 % interval) "
                  "| transit p99 of the whole run ÷ apart from the abuser, median (range) |")
            print("|---|---|---|---|")
            for k in kinds:
                if k == "none":
                    continue
                rows = runs[(sc, k)]
                cells = [fmt_paired(paired(rows, runs[(sc, "none")], key)) for key in ("all", "transit")
                         if key == "all" or "transit" in [x for x, _ in keys]]
                # The whole run's p99 against the same run's p99 without the
                # abuser's windows: how much it raised the others' p99, with
                # the run-to-run noise left out (a slow reader has no apart).
                wa = [row["r"]["transit_ms"]["p99"] / row["r"]["abuser"]["others_transit_apart_ms"]["p99"]
                      for row in rows if row["r"].get("abuser", {}).get("others_transit_apart_ms", {}).get(
                          "count", 0) >= MIN_SPLIT and row["r"]["abuser"]["others_transit_apart_ms"]["p99"]]
                whole = f"×{statistics.median(wa):.3f} ({min(wa):.2f}–{max(wa):.2f}, {len(wa)} runs)" if wa else "–"
                print(f"| {k} | " + " | ".join(cells) + f" | {whole} |")
    any_run = next(iter(runs.values()))[0]["r"]
    m = any_run["machine"]
    print(f"\n(per run, averaged over {reps_note(runs)}; machine: {m['cores']} cores, {m['cpu']}, "
          f"{m['kernel']})")


def reps_note(runs):
    lo, hi = min(len(v) for v in runs.values()), max(len(v) for v in runs.values())
    return f"{hi} repetitions" if lo == hi else f"{lo} to {hi} repetitions"


if __name__ == "__main__":
    main()
