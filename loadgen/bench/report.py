#!/usr/bin/env python3
"""report.py -- the Markdown tables and plots of a scripts/bench run.

Reads every run in a results directory written by scripts/bench: NAME.json
(the parley-loadgen report), NAME.csv (its per-second figures) and NAME.meta
(key=value lines on how the run went), where NAME is SCENARIO.SERVER, or
SCENARIO.SERVER.rN for the Nth of repeated runs (the median one stands for
SCENARIO.SERVER). Prints
one table per scenario with parley and the floor side by side, then a
"target ... measured ... met/missed" line for each of the issue's targets,
computed from the numbers. With --doc it writes that as the generated section
of the Markdown file (between the bench markers, or appended if the file has
none, so hand-written text is kept) and draws the plots into --plots.

    report.py RESULTS [--commit C] [--mode full|quick] [--doc FILE --plots DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HERE = os.path.dirname(os.path.abspath(__file__))

# Each scenario's table: its heading and its columns (label, run name).
SCENARIOS = [
    ("connect", "Connections", [("parley", "connect.parley"), ("floor", "connect.floor")]),
    ("fanout-paced", "Fan-out, paced",
     [("parley", "fanout-paced.parley"), ("floor (send)", "fanout-paced.floor")]),
    ("fanout-burst", "Fan-out, burst",
     [("parley", "fanout-burst.parley"), ("floor (coalesce)", "fanout-burst.floor")]),
    ("rooms", "Rooms",
     [("parley", "rooms.parley"), ("parley, msgpack", "rooms-msgpack.parley"), ("floor", "rooms.floor")]),
    ("presence", "Presence join storm", [("parley", "presence.parley")]),
    ("crossnode", "Cross-node delivery", [("parley, 2 nodes + Redis", "crossnode.parley")]),
]


class Run:
    """One run: its report, its meta, and where its CSV is."""

    def __init__(self, results, name):
        self.name = name
        self.repeats = [self]  # with repeated runs: all of them, in run order
        self.csv = os.path.join(results, name + ".csv")
        with open(os.path.join(results, name + ".json")) as f:
            self.report = json.load(f)
        self.meta = Run.read_meta(os.path.join(results, name + ".meta"))

    @staticmethod
    def read_meta(path):
        """The key=value lines scripts/bench writes about a run, as a dict."""
        meta = {}
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    key, _, value = line.rstrip("\n").partition("=")
                    meta[key] = value
        return meta

    def get(self, *path):
        """The value at path (keys and list indexes), or None."""
        v = self.report
        for p in path:
            try:
                v = v[p]
            except (KeyError, IndexError, TypeError):
                return None
        return v

    def num(self, *path):
        """A measured number at path; None if missing or negative (the
        loadgen writes -1 for "not measured")."""
        v = self.get(*path)
        return v if isinstance(v, (int, float)) and v >= 0 else None

    def hist(self, *path):
        """A latency histogram at path, or None if it counted nothing."""
        h = self.get(*path)
        return h if isinstance(h, dict) and h.get("count") else None

    def per_s(self):
        """Units (deliveries, connections...) per second of the measured window."""
        units, window = self.num("cpu", "units"), self.num("cpu", "window_s")
        # A window of years is an unset end time, not a measurement.
        return units / window if units and window and window < 1e6 else None

    def rate(self):
        """The run's headline rate: connections/s for connect, else per_s()."""
        if self.get("scenario") == "connect":
            return self.num("connections", "per_s")
        return self.per_s()


def take_medians(runs):
    """Replaces each group of repeated runs NAME.rN in runs by NAME, the run
    of median rate (the lower middle one of an even count), which keeps the
    whole group in .repeats."""
    groups = {}
    for name in list(runs):
        m = re.fullmatch(r"(.+)\.r(\d+)", name)
        if m:
            groups.setdefault(m.group(1), []).append((int(m.group(2)), runs.pop(name)))
    for base, members in groups.items():
        in_order = [r for _, r in sorted(members, key=lambda m: m[0])]
        by_rate = sorted(in_order, key=lambda r: r.rate() or 0)
        median = by_rate[(len(by_rate) - 1) // 2]
        median.repeats = in_order
        runs[base] = median


# ---- formatting ----------------------------------------------------------------

def ms(x):
    if x is None:
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def us(x):
    return "—" if x is None else f"{x:.2f} µs" if x < 10 else f"{x:.1f} µs"


def count(x):
    return "—" if x is None else f"{x:,.0f}"


def mib(kb):
    return "—" if kb is None else f"{kb / 1024:.1f}"


def rate(x):
    if x is None:
        return "—"
    return f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x:,.0f}/s"


def hist_text(h, keys=("p50", "p99", "p999", "max")):
    return None if h is None else " / ".join(ms(h.get(k)) for k in keys) + " ms"


def plural(unit):
    return unit[:-1] + "ies" if unit.endswith("y") else unit + "s"


# ---- the rows of a scenario's table ------------------------------------------
# Each row is a label and a function of a Run returning the cell, or None where
# it does not apply; a row that is None for every column is left out.

def roles(r):
    """The names of a run's measured processes, in --server-pid order: the
    bench's server_roles, else node A, node B, ... for a cluster."""
    n = len(r.get("servers") or [])
    given = [x for x in r.meta.get("server_roles", "").split(",") if x]
    if len(given) == n:
        return given
    return [f"node {chr(ord('A') + i)}" for i in range(n)] if n > 1 else [""] * n


def row_rss(r):
    servers = r.get("servers") or []
    cells = [f"{mib(s.get('rss_start_kb'))} → {mib(s.get('rss_joined_kb'))} → {mib(s.get('rss_peak_kb'))} MiB"
             for s in servers]
    if len(cells) > 1:
        cells = [f"{name} {c}" for name, c in zip(roles(r), cells)]
    return "; ".join(cells) or None


def row_cpu(r, who):
    v = r.num("cpu", who + "_us_per_unit")
    if v is None:
        return None
    cell = f"{us(v)} per {r.get('cpu', 'unit')}"
    servers = r.get("servers") or []
    units = r.num("cpu", "units")
    # each process's share, where the loadgen measured each (cpu_s -1: it
    # could not; connect measures only a single server's, 0 for several)
    if who == "server" and len(servers) > 1 and units and all((s.get("cpu_s") or 0) > 0 for s in servers):
        parts = [f"{name} {us(s.get('cpu_s', 0) * 1e6 / units)}" for name, s in zip(roles(r), servers)]
        cell += f" ({', '.join(parts)})"
    server = r.num("cpu", "server_us_per_unit")
    if who == "loadgen" and server:
        cell += f" ({v / server:.0%} of the server's)"
    return cell


def row_loss(r):
    m = r.get("messages")
    if not m or not m.get("sent") or r.get("scenario") == "presence":
        return None
    return f"{m.get('lost', 0):,} / {m.get('duplicated', 0):,} / {m.get('out_of_order', 0):,}"


def row_by_target(r, i):
    by = r.get("latency_by_target_ms") or []
    return hist_text(r.hist("latency_by_target_ms", i)) if len(by) > 1 else None


def row_errors(r):
    errors = r.get("errors") or {}
    bad = {k: v for k, v in errors.items() if isinstance(v, (int, float)) and v}
    codes = {k: v for k, v in (errors.get("close_codes") or {}).items() if v}
    if codes:
        bad["close codes"] = ", ".join(f"{k}: {v}" for k, v in codes.items())
    return ", ".join(f"{k} {v}" for k, v in bad.items()) or "none"


def row_repeats(r):
    if len(r.repeats) < 2:
        return None
    return " · ".join(("**" + rate(x.rate()) + "**") if x is r else rate(x.rate())
                      for x in r.repeats) + f" (median of {len(r.repeats)} in bold)"


def row_result(r):
    cell = r.get("verdict") or "?"
    rc = r.meta.get("loadgen_rc", "0")
    return cell if rc == "0" else f"{cell} (loadgen exit {rc})"


ROWS = [
    ("connections joined / opened",
     lambda r: f"{count(r.num('connections', 'joined'))} / {count(r.num('connections', 'opened'))}"),
    ("connect + join rate", lambda r: rate(r.num("connections", "per_s"))
     if r.get("scenario") == "connect" else None),
    ("every run, in order", row_repeats),
    ("connect (to 101) p50 / p99 / max",
     lambda r: hist_text(r.hist("connections", "connect_ms"), ("p50", "p99", "max"))
     if r.get("scenario") == "connect" else None),
    ("join (to reply) p50 / p99 / max",
     lambda r: hist_text(r.hist("connections", "join_ms"), ("p50", "p99", "max"))
     if r.get("scenario") == "connect" else None),
    ("server RSS per connection", lambda r: None if r.num("server_bytes_per_connection") is None
     else f"{r.num('server_bytes_per_connection'):,.0f} B"),
    ("server RSS: start → joined → peak", row_rss),
    ("messages sent", lambda r: count(r.num("messages", "sent"))
     if r.get("scenario") not in ("connect", "presence") else None),
    ("deliveries received / expected",
     lambda r: f"{count(r.num('messages', 'received'))} / {count(r.num('messages', 'expected'))}"
     if r.get("scenario") not in ("connect", "presence") else None),
    ("lost / duplicated / out of order", row_loss),
    ("measured rate", lambda r: None if r.per_s() is None
     else f"{rate(r.per_s())[:-2]} {plural(r.get('cpu', 'unit'))}/s over {r.num('cpu', 'window_s'):.2f} s"),
    ("server CPU", lambda r: row_cpu(r, "server")),
    ("loadgen CPU", lambda r: row_cpu(r, "loadgen")),
    ("latency p50 / p99 / p99.9 / max", lambda r: hist_text(r.hist("latency_ms"))),
    ("same-node latency p50 / p99 / p99.9 / max", lambda r: row_by_target(r, 0)),
    ("cross-node latency p50 / p99 / p99.9 / max", lambda r: row_by_target(r, 1)),
    ("first receiver p50 / p99 / max",
     lambda r: hist_text(r.hist("fanout", "first_receiver_ms"), ("p50", "p99", "max"))),
    ("last receiver p50 / p99 / max",
     lambda r: hist_text(r.hist("fanout", "last_receiver_ms"), ("p50", "p99", "max"))),
    ("presence views complete", lambda r: None if r.get("presence") is None
     else f"{count(r.num('presence', 'views_complete'))} of {count(r.num('presence', 'users'))}"),
    ("last view complete, after the last join", lambda r: None if r.get("presence") is None
     else f"{ms(r.num('presence', 'convergence_ms'))} ms"),
    ("errors", row_errors),
    ("machine busy (all cores): before / during the run",
     lambda r: f"{r.meta.get('busy_before_pct', '?')} % / {r.meta.get('busy_during_pct', '?')} %"),
    ("result", row_result),
]


# ---- targets -----------------------------------------------------------------

def ratio_target(scenario, text, parley, floor, fmt, limit, at_least=False):
    """A target relative to the floor: parley / floor ≤ limit (≥ if at_least)."""
    if parley is None or floor is None or floor == 0:
        return (scenario, text, f"parley {fmt(parley)}, floor {fmt(floor)}", None)
    r = parley / floor
    met = r >= limit if at_least else r <= limit
    return (scenario, text, f"parley {fmt(parley)}, floor {fmt(floor)}: {r:.2f} ×", met)


def abs_target(scenario, text, value, fmt, limit, at_least=False):
    if value is None:
        return (scenario, text, "—", None)
    return (scenario, text, fmt(value), value >= limit if at_least else value <= limit)


def targets(runs):
    """The issue's targets that this set of runs can check: a list of
    (scenario, target, measured, met: True, False or None if not measured)."""
    def get(name, *path):
        return runs[name].num(*path) if name in runs else None

    def last_p99(name):
        h = runs[name].hist("fanout", "last_receiver_ms") if name in runs else None
        return h and h.get("p99")

    out = []
    if "connect.parley" in runs:
        t = ratio_target("connect", "connect + join rate ≥ 0.8 × the floor's",
                         get("connect.parley", "connections", "per_s"),
                         get("connect.floor", "connections", "per_s"), rate, 0.8, True)
        n = len(runs["connect.parley"].repeats)
        if n > 1:
            t = (t[0], t[1], t[2].replace(":", f" (medians of {n} runs each):", 1), t[3])
        out.append(t)
        out.append(abs_target("connect", "server RSS per connection ≤ 2 KiB (2,048 B)",
                              get("connect.parley", "server_bytes_per_connection"),
                              lambda b: f"{b:,.0f} B", 2048))
    if "fanout-paced.parley" in runs:
        out.append(ratio_target("fanout-paced", "server CPU per delivery ≤ 1.3 × the floor's",
                                get("fanout-paced.parley", "cpu", "server_us_per_unit"),
                                get("fanout-paced.floor", "cpu", "server_us_per_unit"), us, 1.3))
        out.append(ratio_target("fanout-paced", "last-receiver p99 ≤ 1.2 × the floor's",
                                last_p99("fanout-paced.parley"), last_p99("fanout-paced.floor"),
                                lambda x: f"{ms(x)} ms", 1.2))
    if "fanout-burst.parley" in runs:
        out.append(abs_target("fanout-burst", "≥ 1,000,000 deliveries/s",
                              runs["fanout-burst.parley"].per_s(), rate, 1e6, True))
    if "rooms.parley" in runs:
        h = runs["rooms.parley"].hist("latency_ms")
        out.append(abs_target("rooms", "delivery latency p99 ≤ 5 ms", h and h.get("p99"),
                              lambda x: f"{ms(x)} ms", 5))
    if "presence.parley" in runs:
        out.append(abs_target("presence", "every view complete ≤ 1 s after the last join",
                              get("presence.parley", "presence", "convergence_ms"),
                              lambda x: f"{ms(x)} ms", 1000))
        out.append(abs_target("presence", "server peak RSS < 50 MB",
                              get("presence.parley", "server_rss_peak_kb"),
                              lambda kb: f"{kb * 1024 / 1e6:.1f} MB", 50e6 / 1024))
    if "crossnode.parley" in runs:
        same = runs["crossnode.parley"].hist("latency_by_target_ms", 0)
        cross = runs["crossnode.parley"].hist("latency_by_target_ms", 1)
        diff = cross["p99"] - same["p99"] if same and cross else None
        out.append(("crossnode", "cross-node p99 − same-node p99 ≤ 1 ms",
                    "—" if diff is None else
                    f"{ms(cross['p99'])} − {ms(same['p99'])} = {diff:+.2f} ms",
                    None if diff is None else diff <= 1))
    return out


def verdict(met):
    return "not measured" if met is None else "**met**" if met else "**missed**"


def checks(runs, results):
    """What casts doubt on a run's figures, and runs that left no report."""
    notes = []
    every = {x.name: x for r in runs.values() for x in r.repeats}
    for f in sorted(os.listdir(results)):
        name = f[:-len(".meta")]
        if f.endswith(".meta") and name not in every:
            rc = Run.read_meta(os.path.join(results, f)).get("loadgen_rc", "?")
            notes.append(f"{name}: no report (loadgen exit {rc}; see {name}.out in the results)")
    for name, r in every.items():
        if r.get("ok") is not True or r.meta.get("loadgen_rc", "0") != "0":
            notes.append(f"{name}: {row_result(r)}; errors: {row_errors(r)}")
        server, loadgen = r.num("cpu", "server_us_per_unit"), r.num("cpu", "loadgen_us_per_unit")
        if server and loadgen and loadgen >= server:
            notes.append(f"{name}: the loadgen used more CPU per {r.get('cpu', 'unit')} than the "
                         f"server ({us(loadgen)} against {us(server)}): on shared cores the "
                         f"loadgen may be what limits this run")
        if r.meta.get("server_warnings", "0") not in ("", "0"):
            notes.append(f"{name}: {r.meta['server_warnings']} server log lines at warn or error")
    return notes


# ---- plots ---------------------------------------------------------------------

# Time series: the plot's file name, title, and its runs (label, run name).
TIMESERIES = [
    ("rooms", "Rooms: per second",
     [("parley", "rooms.parley"), ("parley-msgpack", "rooms-msgpack.parley"), ("floor", "rooms.floor")]),
    ("fanout-paced", "Fan-out, paced: per second",
     [("parley", "fanout-paced.parley"), ("floor", "fanout-paced.floor")]),
]


def gnuplot(script, out, **params):
    defs = "; ".join(f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())
    subprocess.run(["gnuplot", "-e", f"{defs}; out='{out}'", os.path.join(HERE, script)], check=True)


def plots(runs, results, plot_dir):
    """Draws the plots; returns [(title, file name)]."""
    os.makedirs(plot_dir, exist_ok=True)
    made = []
    for name, title, series in TIMESERIES:
        present = [(label, runs[n]) for label, n in series if n in runs and os.path.exists(runs[n].csv)]
        if not present:
            continue
        out = os.path.join(plot_dir, name + ".svg")
        gnuplot("timeseries.gp", out, title=title, files=" ".join(r.csv for _, r in present),
                labels=" ".join(label for label, _ in present))
        made.append((title, name + ".svg"))

    # parley against the floor, one panel per measure: (y label, [(row, parley, floor)]).
    def pair(scenario, f):
        p, fl = runs.get(scenario + ".parley"), runs.get(scenario + ".floor")
        return (scenario.replace("fanout-", ""), p and f(p), fl and f(fl))

    def last_p99(r):
        h = r.hist("fanout", "last_receiver_ms")
        return h and h["p99"]

    # (y label, log scale, rows): paced and burst differ by orders of magnitude.
    panels = [
        ("server CPU per delivery (µs)", True,
         [pair(s, lambda r: r.num("cpu", "server_us_per_unit")) for s in ("fanout-paced", "fanout-burst", "rooms")]),
        ("p99 latency (ms): last receiver; rooms: all", True,
         [pair("fanout-paced", last_p99), pair("fanout-burst", last_p99),
          pair("rooms", lambda r: (r.hist("latency_ms") or {}).get("p99"))]),
        ("connect + join rate (1000/s)", False,
         [pair("connect", lambda r: (r.num("connections", "per_s") or 0) / 1000 or None)]),
    ]
    files = {}
    for i, (ylabel, log, rows) in enumerate(p for p in panels if any(r[1] for r in p[2])):
        data = os.path.join(results, f"compare{i + 1}.dat")
        with open(data, "w") as f:
            for label, p, fl in rows:
                f.write(f'"{label}" {p if p else "?"} {fl if fl else "?"}\n')
        files.update({f"file{i + 1}": data, f"ylabel{i + 1}": ylabel, f"log{i + 1}": int(log)})
    if files:
        out = os.path.join(plot_dir, "compare.svg")
        gnuplot("compare.gp", out, panels=len(files) // 3, **files)
        made.append(("parley against the floor", "compare.svg"))
    return made


# ---- the Markdown --------------------------------------------------------------

def describe(scenario, r):
    """One sentence on what a scenario's runs did, from the report's params."""
    p = r.get("params") or {}
    n = p.get("conns", 0)
    if scenario == "connect":
        ramp = f"{p.get('ramp'):,.0f}/s" if p.get("ramp") else "as fast as they are accepted"
        rooms = "one topic" if p.get("rooms") == 1 else f"one of {p.get('rooms'):,} topics"
        return (f"{n:,} connections ({ramp}, from {p.get('workers')} loadgen processes and "
                f"{p.get('source_ips')} source addresses), each joining {rooms}, "
                f"held {p.get('hold_s'):g} s. RSS per connection is the server's RSS growth "
                f"from before the first connection to the last join reply, divided by the connections.")
    if scenario.startswith("fanout"):
        how = "back to back" if p.get("burst") else f"at {p.get('rate'):g}/s"
        return (f"{n:,} subscribers of one topic and {p.get('publishers')} publisher; "
                f"{p.get('messages'):,} messages of {p.get('payload')} B {how}. First/last receiver: "
                f"from the publish to the first and to the last subscriber's read of each message.")
    if scenario == "rooms":
        return (f"{n:,} users in {p.get('rooms'):,} rooms, each user sending {p.get('rate'):g} message/s "
                f"of {p.get('payload')} B (open loop) for {p.get('duration_s'):g} s after "
                f"{p.get('warmup_s'):g} s of warm-up; every member of a room, the sender included, "
                f"gets every message of the room. Latency is from the send to each read.")
    if scenario == "presence":
        return (f"{n:,} users connect, then join one presence room at {p.get('rate'):g} joins/s "
                f"(open loop); each client applies presence_state and every presence_diff to its own "
                f"view, until the view holds every user.")
    if scenario == "crossnode":
        return (f"A redis-server and two parley nodes with `--redis`; {n} subscribers spread over both "
                f"nodes, {p.get('publishers')} publisher on node A sending {p.get('payload')}-byte messages "
                f"at {p.get('rate'):g}/s for {p.get('duration_s'):g} s after {p.get('warmup_s'):g} s of "
                f"warm-up, from {p.get('workers')} loadgen process{'es' if p.get('workers') != 1 else ''}. "
                f"Same-node: node A's subscribers; cross-node: node B's, through Redis. Server CPU is "
                f"the cluster's: both nodes and Redis.")
    return ""


def sweep(runs):
    """The rooms runs at each rate per user (the standard one and the
    rooms-sweep-NNN ones), as Markdown lines, lightest load first."""
    rates = {}
    for name, r in runs.items():
        m = re.fullmatch(r"(rooms|rooms-sweep-\d+)\.(parley|floor)", name)
        if m and (r.get("params") or {}).get("rate") is not None:
            rates.setdefault(r.get("params")["rate"], {})[m.group(2)] = r
    if len(rates) < 2:
        return []

    def p99(r):
        h = r and r.hist("latency_ms")
        return h and h.get("p99")

    def cells(r):
        if r is None:
            return ["—", "—"]
        return [hist_text(r.hist("latency_ms"), ("p50", "p99")) or "—",
                us(r.num("cpu", "server_us_per_unit"))]

    def holds(label, kind):
        ok = [rt for rt, by in rates.items() if p99(by.get(kind)) is not None and p99(by.get(kind)) <= 5]
        bad = [rt for rt, by in rates.items() if p99(by.get(kind)) is not None and p99(by.get(kind)) > 5]
        top = max((rt for rt in ok if not any(b < rt for b in bad)), default=None)
        if top is None:
            return f"{label} at none of these loads"
        by = rates[top][kind]
        return f"{label} up to {top:g} msg/s per user ({rate(by.per_s())[:-2]} deliveries/s)"

    out = ["#### The same rooms at other loads", "",
           "The rooms run again with each user sending fewer messages per second, to show "
           "the load up to which the p99 target holds, for parley and the floor alike.", "",
           "| msg/s per user | deliveries/s | parley p50 / p99 | parley server CPU per delivery "
           "| floor p50 / p99 | floor server CPU per delivery |",
           "|---|---|---|---|---|---|"]
    for rt in sorted(rates):
        by = rates[rt]
        any_run = by.get("parley") or by.get("floor")
        out.append(f"| {rt:g} | {rate(any_run.per_s())[:-2]} | " +
                   " | ".join(cells(by.get("parley")) + cells(by.get("floor"))) + " |")
    out += ["", "p99 ≤ 5 ms holds: " + "; ".join(holds(label, kind) for label, kind in (("parley", "parley"), ("the floor", "floor"))) + ".", ""]
    return out


def markdown(runs, args, plot_files, plot_link):
    first = next(iter(runs.values()))
    m = first.get("machine") or {}
    date = min(r.get("date") or "" for r in runs.values())
    parley = next((r.meta.get("server_cmd") for r in runs.values() if r.meta.get("kind") == "parley"), None)
    out = [BEGIN,
           "<!-- Written by scripts/bench (loadgen/bench/report.py): "
           "everything up to bench:end is replaced by the next run. -->",
           "", "## Standard benchmark (`scripts/bench`)", ""]
    if args.mode == "quick":
        out += ["**QUICK=1 run: small sizes for trying the script; not figures to compare.**", ""]
    out += [f"**Machine:** {m.get('cores', '?')} cores, {m.get('cpu', '?')}, {m.get('kernel', '?')}. "
            f"**Commit:** `{args.commit}`. **Date:** {date}.",
            "",
            "Each run gets fresh servers on ephemeral 127.0.0.1 ports and starts once the machine "
            "is quiet; runs never overlap, but in each the server and `parley-loadgen` share the "
            "machine's cores. "
            + (f"parley runs as `{parley}`. " if parley else "")
            + "The floor is `parley-floor` (loadgen/floor), a minimal server that does only what "
            "the loadgen needs: its figures are the baseline parley's are read against. Server "
            "CPU is exact (from /proc/PID/schedstat) over the measured window, divided by the "
            "units (deliveries, connections, joins) in that window; the loadgen's CPU is shown "
            "too, and must stay clearly below the server's for the figure to be the server's. "
            "Latencies are in ms: p50 / p99 / p99.9 / max. To reproduce: `scripts/bench` "
            "(`scripts/bench --help` lists the settings); the JSON reports, per-second CSVs and "
            "server logs of a run are kept in `build/bench/<date>/`.",
            ""]

    found = targets(runs)
    if found:
        out += ["| scenario | target | measured | |", "|---|---|---|---|"]
        out += [f"| {s} | {t} | {v} | {verdict(met)} |" for s, t, v, met in found]
        out.append("")

    for scenario, heading, columns in SCENARIOS:
        cols = [(label, runs[name]) for label, name in columns if name in runs]
        if not cols:
            continue
        out += [f"### {heading}", "", describe(scenario, cols[0][1]), "",
                "| | " + " | ".join(label for label, _ in cols) + " |",
                "|---|" + "---|" * len(cols)]
        for label, f in ROWS:
            cells = [f(r) for _, r in cols]
            if any(c is not None for c in cells):
                out.append(f"| {label} | " + " | ".join(c or "—" for c in cells) + " |")
        out.append("")
        for s, t, v, met in found:
            if s == scenario:
                out.append(f"- target: {t}; measured: {v}: {verdict(met)}")
        out.append("")
        if scenario == "rooms":
            out += sweep(runs)

    notes = checks(runs, args.results)
    if notes:
        out += ["### Caveats", ""] + [f"- {n}" for n in notes] + [""]
    if plot_files:
        out += ["### Plots", ""]
        out += [f"![{title}]({plot_link}/{name})" for title, name in plot_files]
        out.append("")
    out.append(END)
    return "\n".join(out)


def splice(path, section):
    """Replaces the generated section of the file at path; appends it if the
    file has no markers (its text is kept either way)."""
    text = open(path).read() if os.path.exists(path) else ""
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        text = text[:i] + section + text[j + len(END):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--doc", help="the Markdown file to write the section into")
    ap.add_argument("--plots", help="the directory for the SVG plots (with --doc)")
    args = ap.parse_args()

    names = sorted(f[:-5] for f in os.listdir(args.results)
                   if f.endswith(".json") and os.path.getsize(os.path.join(args.results, f)))
    runs = {n: Run(args.results, n) for n in names}
    take_medians(runs)
    if not runs:
        sys.exit(f"report.py: no reports in {args.results}")
    plot_files, link = [], ""
    if args.doc and args.plots:
        plot_files = plots(runs, args.results, args.plots)
        link = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.doc)))
    section = markdown(runs, args, plot_files, link)
    with open(os.path.join(args.results, "section.md"), "w") as f:
        f.write(section + "\n")
    if args.doc:
        splice(args.doc, section)
        print(f"report.py: wrote {args.doc}" + (f" and {len(plot_files)} plots in {args.plots}"
                                               if plot_files else ""), file=sys.stderr)
    else:
        print(section)


if __name__ == "__main__":
    main()
