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
#   crossnode    a cluster: its own redis-server and two nodes A and B (both
#                --redis to it); XCONNS subscribers on each node join one
#                topic, XPUBS publishers on A send PAYLOAD-byte messages open
#                loop at XRATE messages/s in all for XWARMUP_MS + XDURATION_S;
#                latency histograms for A's subscribers (same-node) and B's
#                (cross-node), the difference of their p99s against the
#                target XTARGET_MS, loss/duplicates/order per publisher, CPU
#                of both nodes and of Redis
#   crossnode_1k the same at XRATE_LOW messages/s, for comparison
#
# and prints the machine, the commit and one table per mode. See the header
# of fanout_bench.c for what is measured and how. Every process started here
# is stopped by its PID (the bench's worker processes die with it), and the
# scratch directory is removed on exit unless KEEP=1.
#
# Settings (environment): SCENARIOS="idle paced burst presence presence_big
# crossnode crossnode_1k" CONNS=10000 WORKERS=2 PACED_MSGS=20 INTERVAL_MS=250
# BURST_MSGS=200 PAYLOAD=100 HOLD_S=5 PRESENCE_CONNS=2000 PRESENCE_BIG=10000
# PRESENCE_RATE=500 PRESENCE_DELAY_MS=1000 PRESENCE_RSS_MB=50
# XCONNS=10 XPUBS=1 XRATE=10000 XRATE_LOW=1000 XDURATION_S=10 XWARMUP_MS=1000
# XWORKERS=2 XTAP=1 XTARGET_MS=1 XQUIET_PCT=15 XQUIET_WAIT_S=120
# REDIS_SERVER=redis-server PARLEY=build/server/parley KEEP=0
#
# Crossnode: XTAP=1 adds a plain Redis subscriber (in the bench) on the
# topic's channel, which times the A -> Redis leg; XTAP=0 leaves Redis with
# the two nodes as its only subscribers. Before each crossnode scenario the
# script waits (up to XQUIET_WAIT_S) for the machine to be less than
# XQUIET_PCT % busy over 2 s, since other load on a small machine shows up
# directly in the latency tail (0: do not wait); the busy share of other
# processes during the run is reported either way.
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
XCONNS=${XCONNS:-10}
XPUBS=${XPUBS:-1}
XRATE=${XRATE:-10000}
XRATE_LOW=${XRATE_LOW:-1000}
XDURATION_S=${XDURATION_S:-10}
XWARMUP_MS=${XWARMUP_MS:-1000}
XWORKERS=${XWORKERS:-2}
XTAP=${XTAP:-1}
XTARGET_MS=${XTARGET_MS:-1}
XQUIET_PCT=${XQUIET_PCT:-15}
XQUIET_WAIT_S=${XQUIET_WAIT_S:-120}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
SCENARIOS=${SCENARIOS:-idle paced burst presence presence_big crossnode crossnode_1k}
[ "$PRESENCE_BIG" != 0 ] || SCENARIOS=${SCENARIOS//presence_big/}
KEEP=${KEEP:-0}
SERVER_OPTS=(--out-queue-msgs 10000 --out-queue-bytes 16777216 --idle-timeout 3600)

SERVER_PID=
BENCH_PID=
NODE_A_PID=
NODE_B_PID=
REDIS_PID=
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
    stop_pid "$NODE_A_PID" 10
    stop_pid "$NODE_B_PID" 10
    stop_pid "$REDIS_PID" 10
    BENCH_PID='' SERVER_PID='' NODE_A_PID='' NODE_B_PID='' REDIS_PID=''
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

# start_node <log> [parley option]...: starts a parley on an ephemeral port
# (its PID in NODE_PID at once, so that the caller can record it for the
# cleanup) and waits for its port; sets NODE_PORT. Exits if it fails.
start_node() {
    local log=$1 i
    shift
    "$PARLEY" --listen 127.0.0.1:0 "${SERVER_OPTS[@]}" "$@" >"$log" 2>&1 &
    NODE_PID=$!
}
wait_node() {
    local log=$1 i
    NODE_PORT=
    for ((i = 0; i < 200; i++)); do
        NODE_PORT=$(sed -n 's/.*event=listening .*port=\([0-9]*\).*/\1/p' "$log")
        [ -n "$NODE_PORT" ] && return 0
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.05
    done
    say "parley did not start:"; cat "$log" >&2
    exit 1
}

# Starts a fresh server on an ephemeral port; sets SERVER_PID and PORT.
start_server() {
    local log=$TMP/$1.server.log
    start_node "$log"
    SERVER_PID=$NODE_PID
    wait_node "$log"
    PORT=$NODE_PORT
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

# busy_pct <seconds>: how busy the whole machine is over a sample, in %: 100
# minus the share of elapsed time x CPUs that /proc/stat counts as idle or
# iowait (its user/system fields are tick samples, unreliable here; see
# machine_ticks() in fanout_bench.c).
busy_pct() {
    local a b t0 t1
    t0=$(date +%s.%N); a=$(head -1 /proc/stat); sleep "$1"
    t1=$(date +%s.%N); b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
        -v n="$(nproc)" 'BEGIN {
        split(a, x); split(b, y); idle = (y[5] - x[5]) + (y[6] - x[6]); all = (t1 - t0) * hz * n
        p = all > 0 ? 100 * (1 - idle / all) : 0
        if (p < 0) p = 0
        if (p > 100) p = 100
        printf "%.0f", p }'
}

# Waits (XQUIET_WAIT_S at most) for the machine to be less than XQUIET_PCT %
# busy over 2 s; records what it saw in $TMP/<scenario>.quiet.
quiet_wait() {
    local name=$1 start=$SECONDS p
    [ "$XQUIET_PCT" != 0 ] || { echo "not waited for" >"$TMP/$name.quiet"; return 0; }
    while :; do
        p=$(busy_pct 2)
        if [ "$p" -lt "$XQUIET_PCT" ]; then
            echo "$p % busy over 2 s just before (waited $((SECONDS - start)) s)" >"$TMP/$name.quiet"
            return 0
        fi
        if [ $((SECONDS - start)) -ge "$XQUIET_WAIT_S" ]; then
            echo "still $p % busy after waiting $XQUIET_WAIT_S s: ran anyway" >"$TMP/$name.quiet"
            say "   (the machine is $p % busy after $XQUIET_WAIT_S s: running anyway)"
            return 0
        fi
    done
}

# Starts a redis-server of our own on a free loopback port (no persistence);
# sets REDIS_PID and REDIS_PORT.
start_redis() {
    local log=$1 try i
    for ((try = 0; try < 20; try++)); do
        REDIS_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --daemonize no --logfile "" >"$log" 2>&1 &
        REDIS_PID=$!
        for ((i = 0; i < 100; i++)); do
            grep -q 'Ready to accept connections' "$log" && return 0
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.05
        done
        stop_pid "$REDIS_PID" 5 # the port was taken, or it is stuck: another port
        REDIS_PID=
    done
    say "redis-server did not start:"; cat "$log" >&2
    exit 1
}

# Waits (10 s at most) until node <port> reports the cluster up with one peer.
wait_cluster() {
    local port=$1 i h
    for ((i = 0; i < 200; i++)); do
        h=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null || true)
        [[ $h == *'"cluster":"ok"'* && $h == *'"peers":1'* ]] && return 0
        sleep 0.05
    done
    say "node on port $port did not join the cluster: $h"
    return 1
}

# xscenario <name> <rate>: the cross-node scenario on a fresh Redis and two
# fresh nodes. Leaves the bench's RESULT line in $TMP/<name>.result and the
# nodes' /metrics in $TMP/<name>.{a,b}.metrics.
xscenario() {
    local name=$1 rate=$2 rc=0 tap=()
    quiet_wait "$name"
    start_redis "$TMP/$name.redis.log"
    start_node "$TMP/$name.a.log" --redis "127.0.0.1:$REDIS_PORT"
    NODE_A_PID=$NODE_PID
    wait_node "$TMP/$name.a.log"
    local port_a=$NODE_PORT
    start_node "$TMP/$name.b.log" --redis "127.0.0.1:$REDIS_PORT"
    NODE_B_PID=$NODE_PID
    wait_node "$TMP/$name.b.log"
    local port_b=$NODE_PORT
    wait_cluster "$port_a" && wait_cluster "$port_b" || true
    [ "$XTAP" = 1 ] && tap=(--redis-port "$REDIS_PORT")
    say "== $name: fanout_bench crossnode at $rate msg/s (node A pid $NODE_A_PID port $port_a," \
        "node B pid $NODE_B_PID port $port_b, redis pid $REDIS_PID port $REDIS_PORT)"
    "$BENCH" crossnode --port "$port_a" --port-b "$port_b" --server-pid "$NODE_A_PID" \
        --server-pid-b "$NODE_B_PID" --redis-pid "$REDIS_PID" ${tap[@]+"${tap[@]}"} \
        --conns "$XCONNS" --workers "$XWORKERS" --publishers "$XPUBS" --rate "$rate" \
        --duration-s "$XDURATION_S" --warmup-ms "$XWARMUP_MS" --payload "$PAYLOAD" \
        --dump "$TMP/$name.csv" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    BENCH_PID=$!
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=
    grep -v '^RESULT' "$TMP/$name.out" >&2 || true
    cat "$TMP/$name.err" >&2
    [ "$rc" = 0 ] || say "   (fanout_bench exited $rc: see the anomalies below)"
    curl -s --max-time 5 "http://127.0.0.1:$port_a/metrics" >"$TMP/$name.a.metrics" 2>/dev/null || true
    curl -s --max-time 5 "http://127.0.0.1:$port_b/metrics" >"$TMP/$name.b.metrics" 2>/dev/null || true
    # The nodes first (so that they do not see Redis go away), then Redis.
    stop_pid "$NODE_B_PID" 10
    stop_pid "$NODE_A_PID" 10
    stop_pid "$REDIS_PID" 10
    NODE_A_PID='' NODE_B_PID='' REDIS_PID=''
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

# warnings <scenario>: server log lines at warn or error (crossnode: both nodes').
slog() { cat "$TMP/$1.server.log" "$TMP/$1.a.log" "$TMP/$1.b.log" 2>/dev/null || true; }
warnings() { slog "$1" | grep -cE 'level=(warn|error)' || true; }

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Background load: how busy the machine is before we start (1 s sample).
BG_BUSY=$(busy_pct 1)
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
if ran crossnode || ran crossnode_1k; then
    command -v "$REDIS_SERVER" >/dev/null ||
        { say "no $REDIS_SERVER: the crossnode scenarios need it"; exit 1; }
fi
if ran crossnode; then
    xscenario crossnode "$XRATE"
fi
if ran crossnode_1k; then
    xscenario crossnode_1k "$XRATE_LOW"
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

xnode=()
for s in crossnode crossnode_1k; do if ran $s; then xnode+=("$s"); fi; done

# xmetric <scenario> <a|b> <name>: a counter of node A's or B's /metrics.
xmetric() {
    local v
    v=$(awk -v n="$3" '$1 == n { print $2 }' "$TMP/$1.$2.metrics" 2>/dev/null)
    printf '%s' "${v:-?}"
}

# xverdict <scenario>: the p99 difference against the target (at XRATE only).
xverdict() {
    awk -v d="$(get "$1" p99_diff)" -v t="$XTARGET_MS" -v r="$(get "$1" rate)" -v tr="$XRATE" \
        -v lost="$(get "$1" lost)" 'BEGIN {
        if (d == "?") { print "no result"; exit }
        v = (d + 0 <= t + 0) ? "**met**" : "**not met**"
        if (r != tr) v = (d + 0 <= t + 0) ? "within " t " ms" : "over " t " ms"
        printf "%s (%+.3f ms)%s", v, d, lost != 0 ? ", but deliveries were lost" : "" }'
}

# xothers <scenario>: the machine's busy share not used by the nodes, Redis
# or the bench, in % of all cores.
xothers() {
    awk -v busy="$(get "$1" machine_busy_pct)" -v a="$(get "$1" a_cpu_ms)" \
        -v b="$(get "$1" b_cpu_ms)" -v r="$(get "$1" r_cpu_ms)" -v c="$(get "$1" bench_cpu_ms)" \
        -v w="$(get "$1" window_ms)" -v n="$(nproc)" 'BEGIN {
        if (w == "?" || w + 0 == 0) { print "?"; exit }
        ours = 100 * (a + b + r + c) / (w * n); o = busy - ours
        if (o < 0) o = 0
        printf "%.0f", o }'
}

xlabel() {
    printf '%s msg/s, %s + %s subs, %s pub' "$(get "$1" rate)" "$(get "$1" subs_a)" \
        "$(get "$1" subs_b)" "$(get "$1" publishers)"
}

if [ ${#xnode[@]} != 0 ]; then
    printf '\n### Cross-node delivery: two nodes, one Redis\n\n'
    printf 'Target: cross-node delivery adds ≤ %s ms p99 over same-node delivery at %s messages/s.\n\n' \
        "$XTARGET_MS" "$XRATE"
    printf 'Node A and node B are two `parley` processes with `--redis` to one `redis-server` (no persistence), all on this machine. %s subscribers on each node (owned by %s client worker processes) join one topic; %s publisher(s) on node A push %s-byte bodies open loop at a fixed total rate, %s ms of warm-up and then %s s; latencies (ms) are of the messages after the warm-up, from the publisher'"'"'s write to the subscriber'"'"'s read.\n\n' \
        "$XCONNS" "$XWORKERS" "$XPUBS" "$PAYLOAD" "$XWARMUP_MS" "$XDURATION_S"
    echo "| Scenario | Deliveries measured | p50 | p90 | p99 | p99.9 | max |"
    echo "|---|---|---|---|---|---|---|"
    for s in "${xnode[@]}"; do
        echo "| $(xlabel $s): same-node (A) | $(get $s a_n) | $(get $s a_p50) | $(get $s a_p90) | $(get $s a_p99) | $(get $s a_p999) | $(get $s a_max) |"
        echo "| $(xlabel $s): cross-node (B) | $(get $s b_n) | $(get $s b_p50) | $(get $s b_p90) | $(get $s b_p99) | $(get $s b_p999) | $(get $s b_max) |"
        t=$(get $s tap_n)
        if [ "$t" != 0 ] && [ "$t" != "?" ]; then
            echo "| $(xlabel $s): tap, A → Redis → a plain subscriber | $t messages | $(get $s tap_p50) | $(get $s tap_p90) | $(get $s tap_p99) | $(get $s tap_p999) | $(get $s tap_max) |"
        fi
    done
    printf '\n'
    echo "| Scenario | p99 same-node | p99 cross-node | Difference | Target ≤ $XTARGET_MS ms | Messages sent, rate achieved | Publisher schedule lateness p99 / max | Deliveries received / expected | Deliveries/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for s in "${xnode[@]}"; do
        echo "| $(xlabel $s) | $(get $s a_p99) ms | $(get $s b_p99) ms | $(get $s p99_diff) ms | $(xverdict $s) | $(get $s sent) at $(get $s send_rate)/s | $(get $s late_p99_ms) / $(get $s late_max_ms) ms | $(get $s received) / $(get $s expected) | $(get $s deliv_per_s) |"
    done
    printf '\n%s\n\n' "Loss, duplication and order per publisher (all messages, warm-up included):"
    echo "| Scenario | Publisher | Node | Received / expected | Missing | Duplicates | Out of order |"
    echo "|---|---|---|---|---|---|---|"
    for s in "${xnode[@]}"; do
        np=$(get $s publishers)
        [ "$np" = "?" ] && continue
        for ((p = 0; p < np; p++)); do
            for n in a b; do
                e=$(get $s p${p}_${n}_exp)
                r=$(get $s p${p}_${n}_recv)
                echo "| $(xlabel $s) | $p | ${n^^} | $r / $e | $((e - r)) | $(get $s p${p}_${n}_dup) | $(get $s p${p}_${n}_ooo) |"
            done
        done
    done
    printf '\n%s\n\n' "CPU from the first send to the last read (utime+stime from /proc/<pid>/stat, 10 ms ticks; % of one core), and time spent runnable but waiting for a CPU (/proc/<pid>/schedstat):"
    tapcol=
    [ "$XTAP" = 1 ] && tapcol=' + tap'
    echo "| Scenario | Window | Node A | Node B | Redis | Waited for a CPU: A / B / Redis | Bench (workers + publisher$tapcol) | Machine busy; of it other processes | Machine before the run | Envelopes (gossip included): A published / B received / A dropped |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for s in "${xnode[@]}"; do
        echo "| $(xlabel $s) | $(get $s window_ms) ms | $(get $s a_cpu_ms) ms ($(get $s a_cpu_pct) %) | $(get $s b_cpu_ms) ms ($(get $s b_cpu_pct) %) | $(get $s r_cpu_ms) ms ($(get $s r_cpu_pct) %) | $(get $s a_runq_ms) / $(get $s b_runq_ms) / $(get $s r_runq_ms) ms | $(get $s bench_cpu_ms) ms ($(get $s bench_cpu_pct) %) | $(get $s machine_busy_pct) % of $(nproc) cores; $(xothers $s) % | $(cat "$TMP/$s.quiet" 2>/dev/null) | $(xmetric $s a parley_redis_published_total) / $(xmetric $s b parley_redis_received_total) / $(xmetric $s a parley_redis_dropped_total) |"
    done
    printf '\n%s\n\n' "Per message, over the measured messages (ms, p50 / p99 / max): when the first and the last subscriber of each node read it, when the tap did, and differences:"
    echo "| Scenario | first A − send | last A − send | first B − send | last B − send | tap − send | first B − tap | first B − first A | last B − last A |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for s in "${xnode[@]}"; do
        row="| $(xlabel $s) |"
        for k in fa la fb lb tap fb_tap fb_fa lb_la; do
            row+=" $(get $s m_${k}_p50) / $(get $s m_${k}_p99) / $(get $s m_${k}_max) |"
        done
        echo "$row"
    done
fi

# Anything that did not go to plan, from the bench, the server log and /metrics.
notes=()
for s in $SCENARIOS; do
    [ -s "$TMP/$s.result" ] || { notes+=("$s: no result (see the bench output above)"); continue; }
    w=$(warnings "$s")
    if [ "$w" != 0 ]; then
        notes+=("$s: $w server log lines at warn/error, e.g. \`$(slog "$s" | grep -m1 -E 'level=(warn|error)')\`")
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
for s in ${xnode[@]+"${xnode[@]}"}; do
    [ -s "$TMP/$s.result" ] || continue
    [ "$(get $s sent)" = "$(get $s messages)" ] ||
        notes+=("$s: $(get $s sent) of $(get $s messages) messages sent (ended: $(get $s ended))")
    [ "$(get $s lost)" = 0 ] && [ "$(get $s dups)" = 0 ] && [ "$(get $s ooo)" = 0 ] ||
        notes+=("$s: $(get $s lost) deliveries missing, $(get $s dups) duplicated, $(get $s ooo) out of order (run ended: $(get $s ended))")
    for k in closed bad incomplete; do
        [ "$(get $s $k)" = 0 ] || notes+=("$s: $k = $(get $s $k)")
    done
    [ "$(get $s pub_acks)" = "$(get $s sent)" ] ||
        notes+=("$s: publishers got $(get $s pub_acks) ok replies for $(get $s sent) pushes")
    d=$(xmetric $s a parley_redis_dropped_total)
    [ "$d" = 0 ] || notes+=("$s: node A dropped $d envelopes for Redis (parley_redis_dropped_total)")
    if awk -v l="$(get $s late_p99_ms)" 'BEGIN { exit !(l != "?" && l + 0 > 0.5) }'; then
        notes+=("$s: the publisher fell behind its schedule (lateness p99 $(get $s late_p99_ms) ms): the rate was not held open loop")
    fi
    o=$(xothers $s)
    if [ "$o" != "?" ] && [ "$o" -ge 10 ]; then
        notes+=("$s: other processes kept about $o % of the machine busy during the run: the latency tail is not only ours")
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
if [ ${#xnode[@]} != 0 ]; then
    cat <<EOF

Cross-node: each scenario gets a fresh redis-server (\`--save "" --appendonly no\`, loopback, a free port) and two fresh nodes with \`--redis\` to it; the run starts once both report \`"cluster":"ok"\` with one peer in /healthz, and, if XQUIET_PCT is set, once the machine is quiet. The publishers are connections of the bench's parent process, joined to the topic on node A (so each also gets every message back; those echoes are not in the figures). Message k is due at t0 + k / rate and is written by publisher k mod P when due, whatever happened before (open loop; a late wake-up writes what is due at once, and the lateness is reported); the body is "<publisher>:<seq>:<CLOCK_MONOTONIC ns at the write>:" padded with x to PAYLOAD bytes. Subscribers are split over the worker processes so that each worker has as many of node A's as of node B's; each keeps a bitmap of the messages it has read (a second read is a duplicate and is not timed again) and, per publisher, the highest sequence number read (a lower one afterwards is out of order); missing = expected − unique reads. Latency is read time − the time in the body, on the one monotonic clock of this machine, bucketed at about 3 % resolution. The tap (XTAP=1) is a plain Redis connection of the bench that SUBSCRIBEs to the topic's channel \`parley:t:<topic>\` and reads node A's MessagePack envelopes as Redis hands them out, so "tap − send" is the client → node A → Redis leg and "first B − tap" the Redis → node B → client leg. Per-message columns use each message's earliest and latest read among a node's subscribers. CPU is utime+stime of each process over the window (Redis' includes its background threads); "waited for a CPU" is the schedstat run-queue delay of the process' main thread. The nodes, Redis, the bench and anything else running share the machine's $(nproc) cores.
EOF
fi
