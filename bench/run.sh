#!/usr/bin/env bash
# bench/run.sh -- run the Parley connection-memory, fan-out and presence
# benchmarks by hand (they are not ctest tests) and print a Markdown report.
#
# Builds build/fanout_bench from bench/fanout_bench.c (the server itself must
# already be built: build/server/parley), then runs these scenarios, each
# against a fresh parley on an ephemeral 127.0.0.1 port with raised outbound
# queue limits and a long idle timeout:
#
#   idle         CONNS connections join one topic and are held HOLD_S seconds
#   paced        CONNS subscribers, PACED_MSGS messages, one every INTERVAL_MS
#   burst        CONNS subscribers, BURST_MSGS messages back to back
#   presence     PRESENCE_CONNS users join one presence room at PRESENCE_RATE
#                joins/s; every client's view must hold all of them within
#                PRESENCE_DELAY_MS of the last join, with the server's peak
#                RSS under PRESENCE_RSS_MB (10^6 bytes)
#   presence_big the same with PRESENCE_BIG users (skipped if 0)
#
# and prints the machine, the commit and one table per mode. See the header
# of fanout_bench.c for what is measured and how. Every process started here
# is stopped by its PID (the bench's worker processes die with it), and the
# scratch directory is removed on exit unless KEEP=1.
#
# Settings (environment): SCENARIOS="idle paced burst presence presence_big"
# CONNS=10000 WORKERS=2 PACED_MSGS=20 INTERVAL_MS=250 BURST_MSGS=200
# PAYLOAD=100 HOLD_S=5 PRESENCE_CONNS=2000 PRESENCE_BIG=10000 PRESENCE_RATE=500
# PRESENCE_DELAY_MS=1000 PRESENCE_RSS_MB=50 PARLEY=build/server/parley KEEP=0
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
PARLEY=${PARLEY:-$BUILD/server/parley}
BENCH=$BUILD/fanout_bench
CONNS=${CONNS:-10000}
WORKERS=${WORKERS:-2}
PACED_MSGS=${PACED_MSGS:-20}
INTERVAL_MS=${INTERVAL_MS:-250}
BURST_MSGS=${BURST_MSGS:-200}
PAYLOAD=${PAYLOAD:-100}
HOLD_S=${HOLD_S:-5}
PRESENCE_CONNS=${PRESENCE_CONNS:-2000}
PRESENCE_BIG=${PRESENCE_BIG:-10000}
PRESENCE_RATE=${PRESENCE_RATE:-500}
PRESENCE_DELAY_MS=${PRESENCE_DELAY_MS:-1000}
PRESENCE_RSS_MB=${PRESENCE_RSS_MB:-50}
SCENARIOS=${SCENARIOS:-idle paced burst presence presence_big}
[ "$PRESENCE_BIG" != 0 ] || SCENARIOS=${SCENARIOS//presence_big/}
KEEP=${KEEP:-0}
SERVER_OPTS=(--out-queue-msgs 10000 --out-queue-bytes 16777216 --idle-timeout 3600)

SERVER_PID=
BENCH_PID=
TMP=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX")

say() { printf '%s\n' "$*" >&2; }

# Stops a process we started: SIGTERM, up to `grace` seconds, then SIGKILL.
stop_pid() {
    local pid=$1 grace=${2:-10} i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$BENCH_PID" 2
    stop_pid "$SERVER_PID" 10
    BENCH_PID='' SERVER_PID=''
    if [ "$KEEP" = 1 ]; then say "raw output kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$PARLEY" ] || { say "no server at $PARLEY: build it first (cmake --build build)"; exit 1; }
mkdir -p "$BUILD"
cc -O2 -std=c11 -Wall -o "$BENCH" "$ROOT/bench/fanout_bench.c"

# 10k sockets in the server and 10k in the clients: raise the soft limit.
need=$(( (CONNS > PRESENCE_BIG ? CONNS : PRESENCE_BIG) + 200 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] ||
        { say "ulimit -n is $(ulimit -n), need $need"; exit 1; }
fi

# Starts a fresh server on an ephemeral port; sets SERVER_PID and PORT.
start_server() {
    local log=$TMP/$1.server.log i
    "$PARLEY" --listen 127.0.0.1:0 "${SERVER_OPTS[@]}" >"$log" 2>&1 &
    SERVER_PID=$!
    PORT=
    for ((i = 0; i < 200; i++)); do
        PORT=$(sed -n 's/.*event=listening .*port=\([0-9]*\).*/\1/p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    say "parley did not start:"; cat "$log" >&2
    exit 1
}

# Runs one scenario: fresh server, the bench, /metrics, server stopped.
# Leaves the bench's RESULT line in $TMP/<name>.result.
scenario() {
    local name=$1 rc=0
    shift
    start_server "$name"
    say "== $name: fanout_bench $* (server pid $SERVER_PID, port $PORT)"
    "$BENCH" "$@" --port "$PORT" --server-pid "$SERVER_PID" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    BENCH_PID=$!
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=
    grep -v '^RESULT' "$TMP/$name.out" >&2 || true
    cat "$TMP/$name.err" >&2
    [ "$rc" = 0 ] || say "   (fanout_bench exited $rc: see the anomalies below)"
    curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$TMP/$name.metrics" 2>/dev/null || true
    stop_pid "$SERVER_PID" 10
    SERVER_PID=
    grep '^RESULT' "$TMP/$name.out" >"$TMP/$name.result" ||
        { say "no RESULT line from $name"; : >"$TMP/$name.result"; }
}

# get <scenario> <key>: one value of the scenario's RESULT line ("?" if none).
get() {
    local v
    v=$(tr ' ' '\n' <"$TMP/$1.result" | sed -n "s/^$2=//p")
    printf '%s' "${v:-?}"
}

# metric <scenario> <name>: one counter of the server's /metrics after the run.
metric() {
    local v
    v=$(awk -v n="$2" '$1 == n { print $2 }' "$TMP/$1.metrics" 2>/dev/null)
    printf '%s' "${v:-?}"
}

# warnings <scenario>: server log lines at warn or error.
warnings() { grep -cE 'level=(warn|error)' "$TMP/$1.server.log" || true; }

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Background load: how busy the machine is before we start (1 s sample).
busy_now() {
    local a b
    a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x); split(b, y); busy = 0; all = 0
        for (i = 2; i <= 9; i++) { d = y[i] - x[i]; all += d; if (i != 5 && i != 6) busy += d }
        printf "%.0f", all ? 100 * busy / all : 0 }'
}

BG_BUSY=$(busy_now)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

ran() { [[ " $SCENARIOS " == *" $1 "* ]]; }

if ran idle; then
    scenario idle idle --conns "$CONNS" --workers "$WORKERS" --hold-s "$HOLD_S"
fi
if ran paced; then
    scenario paced fanout --conns "$CONNS" --workers "$WORKERS" --messages "$PACED_MSGS" \
        --interval-ms "$INTERVAL_MS" --payload "$PAYLOAD"
fi
if ran burst; then
    scenario burst fanout --conns "$CONNS" --workers "$WORKERS" --messages "$BURST_MSGS" \
        --burst --payload "$PAYLOAD"
fi
if ran presence; then
    scenario presence presence --conns "$PRESENCE_CONNS" --workers "$WORKERS" \
        --rate "$PRESENCE_RATE"
fi
if ran presence_big; then
    scenario presence_big presence --conns "$PRESENCE_BIG" --workers "$WORKERS" \
        --rate "$PRESENCE_RATE"
fi

# ---- the report (stdout) ----
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)

cat <<EOF

## Parley fan-out and presence benchmark ($DATE)

- commit: \`$rev\`${dirty:+ (working tree has uncommitted changes)}; server binary built $(date -u -r "$PARLEY" +%Y-%m-%dT%H:%M:%SZ)
- kernel \`$(uname -r)\`, nproc $(nproc), CPU: ${cpu:-unknown}
- machine CPU busy before the runs (1 s sample): ${BG_BUSY} %
- server: \`parley --listen 127.0.0.1:0 ${SERVER_OPTS[*]}\`, a fresh one per scenario
- clients: \`fanout_bench\` with $WORKERS worker processes for the subscribers, the publisher (presence: the heartbeat and probe sockets) in the parent, on the same machine
EOF

if ran idle; then
    cat <<EOF

### Idle connections: server memory

| Scenario | Joined / failed | Connect + join time | Server CPU to connect + join | Server RSS before | RSS after all joined | RSS per connection | Server CPU over ${HOLD_S} s hold | Closed by server |
|---|---|---|---|---|---|---|---|---|
| idle, $(get idle conns) connections | $(get idle joined) / $(get idle failed) | $(get idle join_s) s | $(get idle server_cpu_join_ms) ms | $(mb "$(get idle rss0_kb)") | $(mb "$(get idle rss1_kb)") | $(get idle rss_per_conn_b) B | $(get idle server_cpu_hold_ms) ms | $(get idle closed) |
EOF
fi

fanout=()
for s in paced burst; do if ran $s; then fanout+=("$s"); fi; done
if [ ${#fanout[@]} != 0 ]; then
    printf '\n### Fan-out: one publisher, one topic\n\n'
    echo "| Scenario | Deliveries received / expected | Wall time, first send to last delivery | Server CPU | Server CPU per delivery | Bench CPU ($WORKERS workers + publisher) | Bench CPU per delivery | Latency send to read p50 / p99 / max | Out of order / server closes / slow-consumer closes | Machine CPU busy, of it server + bench | Server RSS joined → peak |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for s in "${fanout[@]}"; do
        if [ "$s" = paced ]; then
            label="$(get $s subs) subs × $(get $s messages) msgs, every $(get $s interval_ms) ms"
        else
            label="$(get $s subs) subs × $(get $s messages) msgs, burst"
        fi
        echo "| $label | $(get $s received) / $(get $s expected) | $(get $s wall_s) s | $(get $s server_cpu_ms) ms | $(get $s server_us_per_delivery) µs | $(get $s bench_cpu_ms) ms | $(get $s bench_us_per_delivery) µs | $(get $s lat_p50_ms) / $(get $s lat_p99_ms) / $(get $s lat_max_ms) ms | $(get $s gaps) / $(get $s closed) / $(metric $s parley_slow_consumer_disconnects_total) | $(get $s machine_busy_pct) %, $(get $s ours_pct) % | $(mb "$(get $s rss_joined_kb)") → $(mb "$(get $s hwm_kb)") |"
    done
fi

# mbytes <bytes>: in MB (10^6 bytes), one decimal.
mbytes() { awk -v b="$1" 'BEGIN { if (b == "?") print "?"; else printf "%.1f MB", b / 1e6 }'; }

# presence_verdict <scenario>: the target met or not, and why.
presence_verdict() {
    awk -v n="$(get "$1" conns)" -v conv="$(get "$1" converged)" \
        -v d="$(get "$1" conv_delay_ms)" -v dl="$PRESENCE_DELAY_MS" \
        -v hwm="$(get "$1" hwm_kb)" -v lim="$PRESENCE_RSS_MB" 'BEGIN {
        ok_conv = conv == n && d != "?" && d + 0 >= 0 && d + 0 <= dl
        ok_rss = hwm != "?" && hwm * 1024 < lim * 1e6
        printf "%s: views %s, peak RSS %s", ok_conv && ok_rss ? "**met**" : "**not met**",
            conv != n ? "incomplete" : (ok_conv ? "within " : "later than ") dl " ms",
            (ok_rss ? "under " : "not under ") lim " MB" }'
}

presence=()
for s in presence presence_big; do if ran $s; then presence+=("$s"); fi; done
if [ ${#presence[@]} != 0 ]; then
    cat <<EOF

### Presence: a join storm into one room

Target: users joining one room at $PRESENCE_RATE joins/s; every client's presence view holds all of them within $PRESENCE_DELAY_MS ms of the last join; server peak RSS under $PRESENCE_RSS_MB MB (10^6 bytes).

EOF
    echo "| Scenario | Joined / failed / closed | Last join written (from the first) | Last view complete (from the first join) | Convergence delay after the last join | presence_state frames, bytes | presence_diff frames, bytes | All frames; bytes on the wire | Server CPU, t0 to convergence | Clients' CPU (of it user) | Machine busy | Server RSS connected → peak | Target |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for s in "${presence[@]}"; do
        echo "| $(get $s conns) users at $(get $s rate)/s | $(get $s joined) / $(get $s failed) / $(get $s closed) | $(get $s last_join_s) s | $(get $s conv_s) s ($(get $s converged) of $(get $s conns) views: $(get $s ended)) | $(get $s conv_delay_ms) ms | $(get $s state_frames), $(mbytes "$(get $s state_bytes)") | $(get $s diff_frames), $(mbytes "$(get $s diff_bytes)") | $(get $s frames); $(mbytes "$(get $s wire_bytes)") | $(get $s server_cpu_ms) ms | $(get $s client_cpu_ms) ms ($(get $s client_user_ms) ms) | $(get $s machine_busy_pct) % | $(mb "$(get $s rss_conn_kb)") → $(mb "$(get $s hwm_kb)") | $(presence_verdict $s) |"
    done
    printf '\n%s\n\n' "Latencies in ms (p50 / p99 / max) during the storm, and probe joins into the full room after it:"
    echo "| Scenario | Join write → reply | Join write → presence_state read | Heartbeat RTT, idle server | Heartbeat RTT during the storm | Probe join, uncached state: reply / state read / longest heartbeat | Probe join, cached state: reply / state read / longest heartbeat | Chat message after the storm: delivered, time to the last client | Join schedule: worst lateness |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for s in "${presence[@]}"; do
        echo "| $(get $s conns) users at $(get $s rate)/s | $(get $s join_p50_ms) / $(get $s join_p99_ms) / $(get $s join_max_ms) | $(get $s state_p50_ms) / $(get $s state_p99_ms) / $(get $s state_max_ms) | $(get $s hb_base_p50_ms) / $(get $s hb_base_p99_ms) / $(get $s hb_base_max_ms) | $(get $s hb_p50_ms) / $(get $s hb_p99_ms) / $(get $s hb_max_ms) | $(get $s probe1_reply_ms) / $(get $s probe1_state_ms) / $(get $s probe1_hb_max_ms) ($(get $s probe1_keys) keys) | $(get $s probe2_reply_ms) / $(get $s probe2_state_ms) / $(get $s probe2_hb_max_ms) ($(get $s probe2_keys) keys) | $(get $s after_msg) of $(get $s conns), $(get $s after_msg_ms) | $(get $s join_late_max_ms) |"
    done
fi

# Anything that did not go to plan, from the bench, the server log and /metrics.
notes=()
for s in $SCENARIOS; do
    [ -s "$TMP/$s.result" ] || { notes+=("$s: no result (see the bench output above)"); continue; }
    w=$(warnings "$s")
    if [ "$w" != 0 ]; then
        notes+=("$s: $w server log lines at warn/error, e.g. \`$(grep -m1 -E 'level=(warn|error)' "$TMP/$s.server.log")\`")
    fi
    if [ -s "$TMP/$s.err" ]; then
        notes+=("$s: bench stderr: \`$(head -1 "$TMP/$s.err")\`")
    fi
done
for s in ${fanout[@]+"${fanout[@]}"}; do
    [ -s "$TMP/$s.result" ] || continue
    if [ "$(get $s received)" != "$(get $s expected)" ]; then
        notes+=("$s: deliveries lost ($(get $s received) of $(get $s expected), run ended: $(get $s ended))")
    fi
    if [ "$(get $s gaps)" != 0 ]; then
        notes+=("$s: $(get $s gaps) broadcasts out of order or after a missing one")
    fi
    if [ "$(get $s pub_acks)" != "$(get $s messages)" ]; then
        notes+=("$s: publisher got $(get $s pub_acks) ok replies for $(get $s messages) pushes")
    fi
done
for s in ${presence[@]+"${presence[@]}"}; do
    [ -s "$TMP/$s.result" ] || continue
    n=$(get $s conns)
    if [ "$(get $s converged)" != "$n" ] || [ "$(get $s complete_end)" != "$n" ]; then
        notes+=("$s: $(get $s converged) of $n views complete by the end of the storm, $(get $s complete_end) at the very end (the storm ended: $(get $s ended))")
    fi
    [ "$(get $s after_msg)" = "$n" ] ||
        notes+=("$s: a chat message after the storm reached $(get $s after_msg) of $n clients")
    for k in failed closed bad leaves foreign disorder; do
        [ "$(get $s $k)" = 0 ] || notes+=("$s: $k = $(get $s $k)")
    done
    [ "$(get $s hb_sent)" = "$(get $s hb_answered)" ] ||
        notes+=("$s: $(get $s hb_answered) of $(get $s hb_sent) heartbeats answered during the storm")
    [ "$(get $s no_self)" = 0 ] ||
        notes+=("$s: $(get $s no_self) of $n joiners got a presence_state without their own key (it came with the next presence_diff)")
done
echo
if [ ${#notes[@]} = 0 ]; then
    echo "No anomalies: every connection joined, every delivery arrived in order, every presence view completed, no server warnings."
else
    echo "Anomalies:"
    for n in "${notes[@]}"; do echo "- $n"; done
fi
if [ ${#fanout[@]} != 0 ]; then
    cat <<EOF

Fan-out: server CPU is utime+stime of the parley process from /proc/<pid>/stat (10 ms ticks), from just before the first send to the last delivery; bench CPU is getrusage of the client processes over the same window, summed; both per delivery to a subscriber. RSS is VmRSS from /proc/<pid>/status. Latency is from the publisher's write to the subscriber's read (CLOCK_MONOTONIC); in the burst all messages are written at once, so it is mostly queueing. Clients and server share the machine's $(nproc) cores; "machine CPU busy" is all cores over the fan-out window from /proc/stat, and the difference from the server + bench share is other processes.
EOF
fi
if [ ${#presence[@]} != 0 ]; then
    cat <<EOF

Presence: all connections are upgraded first (not measured); then connection i writes its phx_join with {"user": "u<i>", "name": "User <i>"} at t0 + i / rate, open loop. Each client keeps its own view: presence_state, then every presence_diff applied on top, as a bitmap of the user indexes scanned out of the JSON keys. A client has converged when its view first holds every user; "last view complete" is the read time of the frame that completed the last client's view, and the delay is counted from the write of the last phx_join. Frames and bytes are the WebSocket payloads received by the storm's clients ("other" frames are the join replies); "on the wire" is every byte read from their sockets. Server CPU is utime+stime from /proc/<pid>/stat (10 ms ticks) between t0 and convergence; the clients' CPU is getrusage of the worker processes from t0 to their last client's convergence (user time is the parsing and bookkeeping; the rest is the kernel's receive path). Heartbeats go on one extra socket that joins nothing, one at a time, every 5 ms or as soon as the previous one is answered if that is later: for 1 s on the idle server, then through the storm; a slow round trip means the server's loop was busy with something else. After the storm two probe sockets join the full room without a "user" (untracked, so no diff follows): the first finds no cached presence_state, the second gets the first one's; meanwhile heartbeats go every 1 ms. Then one probe pushes a chat message, which every client must receive: a check that no socket was left with frames it never got. Peak RSS is the server's VmHWM. Server, clients and anything else running share the machine's $(nproc) cores.
EOF
fi
