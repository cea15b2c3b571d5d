/* fanout_bench.c -- connection-memory, fan-out and presence benchmark for
 * Parley.
 *
 * A self-contained load client (C11 + Linux libc, no other dependencies) that
 * speaks just enough WebSocket (RFC 6455) and Phoenix Channels V2 JSON to
 * measure four things about running parley servers:
 *
 *   idle    N connections each join one topic and then sit still. The
 *           server's VmRSS (/proc/<pid>/status) is read before the first
 *           connect and after the last join reply, giving bytes of server
 *           memory per joined connection; the connections are then held for
 *           --hold-s seconds and the server's CPU over that hold is reported
 *           too (an idle connection should cost nothing).
 *
 *   fanout  N subscribers join one topic; one extra publisher connection
 *           (also joined, so it receives its own echo) pushes M chat messages
 *           with a --payload byte body, either paced (one every --interval-ms)
 *           or as one burst (--interval-ms 0). Subscribers count broadcasts,
 *           check that each one's sequence numbers arrive in order, and
 *           histogram the latency from the publisher's send to their read.
 *           The measured window runs from just before the first send to the
 *           read that completed the last delivery. Over it we take: server
 *           CPU (utime+stime from /proc/<pid>/stat, in sysconf(_SC_CLK_TCK)
 *           ticks, so 10 ms resolution at 100 Hz), sampled every few ms and
 *           read at the first sample at or after the last delivery; and the
 *           benchmark's own CPU (getrusage of every client process, summed).
 *           Both are divided by deliveries received by subscribers (the
 *           publisher's M echoes are not counted).
 *
 *   presence  A join storm into one presence room. N connections are opened
 *           and upgraded first (not measured); then connection i writes
 *           ["1","1",topic,"phx_join",{"user":"u<i>","name":"User <i>"}] at
 *           t0 + i / --rate, open loop (on schedule whatever the replies; a
 *           late worker catches up, and the worst lateness is reported).
 *           Every client keeps its own presence view as Phoenix's JS client
 *           would: presence_state, then each presence_diff applied on top.
 *           The view is a bitmap of user indexes (key "u<i>" -> bit i) with
 *           a key count; a minimal JSON scan (strings skipped with memchr,
 *           brackets counted) finds the keys at depth 1 of presence_state
 *           and at depth 2 of presence_diff under "joins" / "leaves". A join
 *           of a key already in the view is counted as redundant (normal: a
 *           joiner's state may already hold keys of the diff still pending);
 *           a leave removes the key, which is exact here because every user
 *           has exactly one connection, hence one meta. A client has
 *           converged when its view first holds all N keys. Reported: when
 *           the last phx_join was written and when the LAST client
 *           converged (read time of the frame that completed its view),
 *           both from the first phx_join, and the delay between them;
 *           frames and payload bytes received by the N clients, per kind
 *           (presence_state, presence_diff, other); over t0 -> convergence,
 *           the server's CPU (as for fanout) and its run-queue wait
 *           (/proc/<pid>/schedstat: how long it was runnable but had no
 *           CPU), and the clients' CPU (getrusage in each worker when its
 *           last client converged, user and total); join latencies (write
 *           of phx_join -> its reply, and -> its presence_state read in
 *           full); and heartbeat round trips on one extra, unjoined socket,
 *           one heartbeat at a time, every --hb-ms or when the previous one
 *           is answered if that is later, during the storm and, as a
 *           baseline, over the --settle-ms pause before it: a slow round
 *           trip means the server's loop was busy elsewhere. After
 *           convergence two probe sockets join the full room without a
 *           "user" (untracked, so no diff), one after the other: the first
 *           finds no cached presence_state (the last diff flush dropped
 *           it), the second gets the one the first built; for each, the
 *           join reply and state latencies and the longest heartbeat round
 *           trip until its state was in (heartbeats every 1 ms meanwhile).
 *           Then a probe pushes one chat message, which every client must
 *           receive (a check that no socket's queue was left behind).
 *           Server peak RSS is VmHWM at the end, after a tail of
 *           --settle-ms that also catches late leaves or closes.
 *
 *   crossnode  Two nodes of one cluster: node A (--port) and node B
 *           (--port-b), both started with --redis to the same Redis.
 *           --conns subscribers on EACH node join one topic; --publishers
 *           connections on node A (joined too, so they get their own echo,
 *           which is counted but not timed) send the messages open loop:
 *           message k is due at t0 + k / --rate and goes out on publisher
 *           k mod P as soon as it is due, whatever happened before (a late
 *           wake-up writes everything due at once; the lateness is
 *           reported). Its "b" body is "<publisher>:<seq>:<CLOCK_MONOTONIC
 *           ns at the write>:" padded with x to --payload bytes. The parent
 *           sleeps with epoll_pwait2 and a 1 us timer slack between sends.
 *           Messages of the first --warmup-ms are sent and checked but not
 *           timed; then --duration-s seconds are. Each subscriber keeps a
 *           bitmap of the messages it read (a second read is a duplicate,
 *           not timed again) and, per publisher, the next sequence number
 *           expected (a lower one is out of order); missing = expected -
 *           unique. Latency histograms are kept separately for node A's
 *           subscribers (same-node delivery) and node B's (cross-node), and
 *           per message the first and last read on each node (shared
 *           memory, one array per worker), so the report also has per-
 *           message differences (first B - first A ...) and the worst read
 *           per second. With --redis-port, a tap: a plain Redis connection
 *           in the parent SUBSCRIBEs to the topic's channel parley:t:<topic>
 *           and times node A's MessagePack envelopes as Redis hands them out
 *           (client -> A -> Redis), which splits B's path in two. CPU of
 *           node A, node B and Redis (utime+stime of /proc/<pid>/stat, all
 *           threads) and their run-queue wait (/proc/<pid>/schedstat) over
 *           the window from the first send to the last read; --dump writes
 *           the per-message times as CSV.
 *
 * Layout: the parent process forks --workers worker processes that own the
 * subscriber sockets (connection i belongs to worker i mod W; each worker has
 * its own epoll loop); the parent owns the publisher socket (presence: the
 * heartbeat and probe sockets), paces the sends and samples the server. Per-worker
 * counters and latency histograms live in one MAP_SHARED page set, so the
 * parent polls progress without any messaging; two pipes carry only wake-ups
 * (parent -> worker commands "start"/"stop", worker -> parent "look again").
 * All clocks are CLOCK_MONOTONIC, which is comparable across processes.
 *
 * The WebSocket client: an HTTP/1.1 upgrade request with a random key, the
 * 101 response parsed and its Sec-WebSocket-Accept checked (SHA-1 + base64,
 * done here); client frames masked with a fresh key each; server frames parsed
 * incrementally with 7/16/64-bit lengths, any number per read, a partial frame
 * carried over to the next read. Pings are answered; a close frame is echoed
 * and, like EOF, counts as a server-side close. Fragmented server messages
 * (parley sends none) are counted as "bad". Frames are parsed in a 256 KB
 * read buffer; a frame larger than that (a big presence_state) is gathered in
 * the connection's own buffer, up to MAX_FRAME.
 *
 * Also reported: machine-wide CPU over the window (/proc/stat), so that load
 * from other processes on a shared machine shows up next to the results.
 *
 * The server closes sockets that send nothing for --idle-timeout seconds (60
 * by default) and the bench sends no heartbeats, so start it with e.g.
 * --idle-timeout 3600; raise --out-queue-msgs/--out-queue-bytes for bursts.
 *
 * Each run ends with one machine-readable line, "RESULT key=value ...",
 * which bench/run.sh turns into a Markdown table. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- options -------------------------------------------------------------- */

#define MAXPUB 16 /* crossnode: publisher connections at most */

typedef struct opts {
    const char *mode;     /* "idle", "fanout", "presence" or "crossnode" */
    const char *host;     /* server address (IPv4) */
    int port;
    int server_pid;       /* 0: no RSS/CPU figures */
    int conns;            /* subscribers (0: the mode's default) */
    int messages;         /* fanout: messages to publish */
    int interval_ms;      /* fanout: 0 = burst */
    int workers;          /* client processes owning the subscribers */
    int payload;          /* bytes of the "b" string in each message */
    const char *topic;
    int hold_s;           /* idle: seconds to hold after all joined */
    int src_ips;          /* spread sources over 127.0.0.1 .. 127.0.0.<n> */
    int concurrency;      /* per worker: connections mid-handshake at once */
    int settle_ms;        /* pause between "all joined" and the measurement */
    int quiet_ms;         /* fanout: give up after this long with no delivery */
    int timeout_s;        /* limit for the join phase and for the fan-out */
    int rate;             /* presence: phx_join per second, all workers together */
    int hb_ms;            /* presence: heartbeat interval on the heartbeat socket */
    /* crossnode */
    int port_b;           /* node B's port */
    int server_pid_b;     /* node B's process (0: no CPU figures) */
    int redis_pid;        /* Redis' process (0: no CPU figures) */
    int redis_port;       /* Redis' port, for the tap subscriber (0: no tap) */
    int publishers;       /* publisher connections on node A */
    int duration_s;       /* measured seconds of publishing */
    int warmup_ms;        /* publishing before the measured part */
    const char *dump;     /* per-message times to this file (NULL: none) */
} opts_t;

static opts_t O = {
    .host = "127.0.0.1", .messages = 20, .interval_ms = 250, .workers = 1,
    .payload = 100, .topic = "room:bench", .hold_s = 5, .src_ips = 1, .concurrency = 256,
    .settle_ms = 1000, .quiet_ms = 5000, .timeout_s = 300, .hb_ms = 5,
    .publishers = 1, .duration_s = 10, .warmup_ms = 1000,
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: fanout_bench idle|fanout|presence|crossnode --port P [--option value]...\n"
            "  --host A           server IPv4 address (127.0.0.1)\n"
            "  --port P           server port (required)\n"
            "  --server-pid PID   server process, for VmRSS and CPU (0: skip)\n"
            "  --conns N          subscriber connections (1000; presence 2000;\n"
            "                     crossnode: per node, 10)\n"
            "  --workers W        client processes for the subscribers (1)\n"
            "  --topic T          topic every connection joins (room:bench)\n"
            "  --messages M       fanout: messages published (20)\n"
            "  --interval-ms MS   fanout: pacing, 0 = one burst (250)\n"
            "  --burst            same as --interval-ms 0\n"
            "  --payload B        fanout: bytes of each message body, 48..100000 (100)\n"
            "  --hold-s S         idle: seconds to hold the joined connections (5)\n"
            "  --src-ips K        bind sources across 127.0.0.1..127.0.0.K (1)\n"
            "  --concurrency C    handshakes in flight per worker (256)\n"
            "  --settle-ms MS     pause after all joined (presence: connected) before\n"
            "                     measuring; presence: also the tail after convergence (1000)\n"
            "  --quiet-ms MS      fanout: stop waiting after MS without a delivery (5000)\n"
            "  --timeout-s S      limit for the join phase and the fan-out (300)\n"
            "  --rate R           presence: phx_join per second (500);\n"
            "                     crossnode: messages per second, all publishers (10000)\n"
            "  --hb-ms MS         presence: heartbeat interval, one outstanding at a time (5)\n"
            "crossnode (--port is node A, where the publishers are):\n"
            "  --port-b P         node B's port (required)\n"
            "  --server-pid-b PID node B's process, for CPU (0: skip)\n"
            "  --redis-pid PID    Redis' process, for CPU (0: skip)\n"
            "  --redis-port P     Redis' port: a tap subscriber on the topic's channel\n"
            "                     times the A -> Redis leg (0: no tap)\n"
            "  --publishers P     publisher connections on node A, 1..16 (1)\n"
            "  --duration-s S     measured seconds of publishing (10)\n"
            "  --warmup-ms MS     publishing before that, not in the latencies (1000)\n"
            "  --dump FILE        per-message times (ns): k,sent,firstA,lastA,firstB,lastB,tap\n");
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fanout_bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int int_arg(const char *name, const char *v, int min) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end || x < min || x > 100000000)
        die("bad value for %s: %s", name, v);
    return (int)x;
}

static void parse_args(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        exit(0);
    }
    if (argc < 2 || (strcmp(argv[1], "idle") && strcmp(argv[1], "fanout") &&
                     strcmp(argv[1], "presence") && strcmp(argv[1], "crossnode"))) {
        usage(stderr);
        exit(2);
    }
    O.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--burst")) {
            O.interval_ms = 0;
            continue;
        }
        if (!strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc)
            die("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) O.host = v;
        else if (!strcmp(a, "--port")) O.port = int_arg(a, v, 1);
        else if (!strcmp(a, "--server-pid")) O.server_pid = int_arg(a, v, 0);
        else if (!strcmp(a, "--conns")) O.conns = int_arg(a, v, 1);
        else if (!strcmp(a, "--workers")) O.workers = int_arg(a, v, 1);
        else if (!strcmp(a, "--topic")) O.topic = v;
        else if (!strcmp(a, "--messages")) O.messages = int_arg(a, v, 1);
        else if (!strcmp(a, "--interval-ms")) O.interval_ms = int_arg(a, v, 0);
        else if (!strcmp(a, "--payload")) O.payload = int_arg(a, v, 48);
        else if (!strcmp(a, "--hold-s")) O.hold_s = int_arg(a, v, 0);
        else if (!strcmp(a, "--src-ips")) O.src_ips = int_arg(a, v, 1);
        else if (!strcmp(a, "--concurrency")) O.concurrency = int_arg(a, v, 1);
        else if (!strcmp(a, "--settle-ms")) O.settle_ms = int_arg(a, v, 0);
        else if (!strcmp(a, "--quiet-ms")) O.quiet_ms = int_arg(a, v, 1);
        else if (!strcmp(a, "--timeout-s")) O.timeout_s = int_arg(a, v, 1);
        else if (!strcmp(a, "--rate")) O.rate = int_arg(a, v, 1);
        else if (!strcmp(a, "--hb-ms")) O.hb_ms = int_arg(a, v, 1);
        else if (!strcmp(a, "--port-b")) O.port_b = int_arg(a, v, 1);
        else if (!strcmp(a, "--server-pid-b")) O.server_pid_b = int_arg(a, v, 0);
        else if (!strcmp(a, "--redis-pid")) O.redis_pid = int_arg(a, v, 0);
        else if (!strcmp(a, "--redis-port")) O.redis_port = int_arg(a, v, 0);
        else if (!strcmp(a, "--publishers")) O.publishers = int_arg(a, v, 1);
        else if (!strcmp(a, "--duration-s")) O.duration_s = int_arg(a, v, 1);
        else if (!strcmp(a, "--warmup-ms")) O.warmup_ms = int_arg(a, v, 0);
        else if (!strcmp(a, "--dump")) O.dump = v;
        else die("unknown option %s (see --help)", a);
    }
    if (!O.port)
        die("--port is required");
    int xnode = !strcmp(O.mode, "crossnode");
    if (!O.conns)
        O.conns = !strcmp(O.mode, "presence") ? 2000 : xnode ? 10 : 1000;
    if (!O.rate)
        O.rate = xnode ? 10000 : 500;
    if (xnode) {
        if (!O.port_b)
            die("crossnode needs --port-b");
        if (O.publishers > MAXPUB)
            die("--publishers is at most %d", MAXPUB);
        /* --conns is per node; the workers own both nodes' subscribers. */
        uint64_t m = (uint64_t)O.rate * ((uint64_t)O.warmup_ms + 1000u * (uint64_t)O.duration_s) /
                     1000u;
        if (m < 1 || m > 50000000u)
            die("--rate x (--warmup-ms + --duration-s) gives %llu messages", (unsigned long long)m);
        O.messages = (int)m;
    }
    if (O.workers > (xnode ? 2 * O.conns : O.conns))
        O.workers = xnode ? 2 * O.conns : O.conns;
    if (O.payload > 100000) /* the echo must fit this client's read buffer */
        die("--payload is at most 100000");
    if (O.src_ips > 254)
        die("--src-ips is at most 254");
    if (strlen(O.topic) > 200 || strpbrk(O.topic, "\"\\"))
        die("--topic must be short and need no JSON escaping");
}

/* ---- small utilities ------------------------------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: masking keys and handshake keys need not be cryptographic. */
static uint64_t rng_state;
static uint64_t rnd64(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t cpu_us_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static uint64_t cpu_user_us_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
}

/* utime+stime of a process (all its threads) in clock ticks, from
 * /proc/<pid>/stat (fields 14 and 15; counted after the ")" that ends the
 * command name). -1: no pid. */
static long long pid_ticks(int pid) {
    if (!pid)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        die("cannot parse %s", path);
    unsigned long long ut = 0, st = 0;
    /* After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die("cannot parse %s", path);
    return (long long)(ut + st);
}

static long long server_ticks(void) {
    return pid_ticks(O.server_pid);
}

/* Nanoseconds a process (its main thread) spent runnable but waiting for a
 * CPU, from /proc/<pid>/schedstat (second field); -1: no pid or no
 * schedstats. */
static long long pid_runq_ns(int pid) {
    if (!pid)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = fopen(path, "r");
    unsigned long long run, wait;
    int ok = f && fscanf(f, "%llu %llu", &run, &wait) == 2;
    if (f)
        fclose(f);
    return ok ? (long long)wait : -1;
}

static long long server_runq_ns(void) {
    return pid_runq_ns(O.server_pid);
}

/* A "VmRSS:" style line of /proc/<pid>/status, in kB; -1: no pid. */
static long status_kb(const char *key) {
    if (!O.server_pid)
        return -1;
    char path[64], line[256];
    size_t kl = strlen(key);
    snprintf(path, sizeof path, "/proc/%d/status", O.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            kb = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Machine-wide CPU in ticks: all = elapsed time x online CPUs, busy = all -
 * (idle + iowait) from the first line of /proc/stat. Used to show how loaded
 * the machine was during a measurement, other processes included. Busy is
 * not the sum of /proc/stat's user, system ... fields: those are sampled at
 * timer ticks, and on this kind of VM (tickless idle, work that wakes in
 * step with the tick) they were seen to read 1 % or 49 % for the same
 * 22 % load, and to add up to more ticks than had elapsed; the idle field
 * is kept exactly by the tickless idle code. */
typedef struct machine {
    unsigned long long busy, all, steal;
} machine_t;

static machine_t machine_ticks(void) {
    machine_t m = {0, 0, 0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            double wall = (double)now_ns() / 1e9 * (double)sysconf(_SC_CLK_TCK) *
                          (double)sysconf(_SC_NPROCESSORS_ONLN);
            m.all = (unsigned long long)wall;
            m.busy = m.all > v[3] + v[4] ? m.all - v[3] - v[4] : 0;
            m.steal = v[7];
        }
        fclose(f);
    }
    return m;
}

/* Busy share between two samples, in %, clamped to 0..100. */
static double busy_between(machine_t a, machine_t b) {
    if (b.all <= a.all)
        return 0;
    double p = 100.0 * ((double)b.busy - (double)a.busy) / (double)(b.all - a.all);
    return p < 0 ? 0 : p > 100 ? 100 : p;
}

static double ticks_ms(long long ticks) {
    return (double)ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- SHA-1 and base64, for the handshake ---------------------------------- */

static uint32_t rol32(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol32(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, msg + i);
    uint8_t tail[128] = {0};
    size_t rest = len - full, tl = rest + 9 <= 64 ? 64 : 128;
    memcpy(tail, msg + full, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < tl; i += 64)
        sha1_block(h, tail + i);
    for (int i = 0; i < 20; i++)
        out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < len; i += 3, out += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[0] = tab[v >> 18], out[1] = tab[v >> 12 & 63], out[2] = tab[v >> 6 & 63];
        out[3] = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[0] = tab[v >> 18], out[1] = tab[v >> 12 & 63];
        out[2] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[3] = '=';
        out += 4;
    }
    *out = '\0';
}

/* ---- shared statistics ---------------------------------------------------- */

/* Latency histogram, log-linear: exact below 32 us, then 32 buckets per power
 * of two (about 3 % resolution), up to 2^63 us. */
#define HSUB 32
#define HBUCKETS (60 * HSUB)

static int hbucket(uint64_t us) {
    if (us < HSUB)
        return (int)us;
    int k = 63 - __builtin_clzll(us); /* k >= 5 */
    return (k - 4) * HSUB + (int)((us >> (k - 5)) & (HSUB - 1));
}

static double hbucket_mid_us(int i) {
    if (i < HSUB)
        return i;
    int k = i / HSUB + 4, sub = i % HSUB;
    return ((double)(HSUB + sub) + 0.5) * (double)(1ull << (k - 5));
}

/* Kinds of server frames, counted in presence mode. */
enum { K_STATE, K_DIFF, K_OTHER, NKINDS };

/* One per worker process, in shared memory; the parent reads while the
 * worker writes (relaxed atomics: we only need eventual, tear-free values).
 * The plain fields are read only after "stopped" is seen. */
typedef struct wstat {
    _Atomic uint64_t joined, failed, closed, received, gaps, bad, last_rx_ns;
    _Atomic int ready, started, stopped, close_code;
    uint64_t cpu_us;  /* worker CPU between "start" and "stop" */
    uint64_t hist[HBUCKETS]; /* fanout: send -> read; presence: phx_join -> reply */
    /* presence */
    _Atomic uint64_t t0;           /* parent -> worker: when join 0 is due */
    _Atomic uint64_t converged;    /* clients whose view reached all N keys */
    _Atomic uint64_t last_conv_ns; /* when the latest of them did */
    _Atomic uint64_t after_msgs;   /* chat messages received after the storm */
    uint64_t cpu_conv_us;          /* worker CPU from "start" to its last convergence */
    uint64_t user_conv_us;         /* the user-space part of it (the rest is the kernel's) */
    uint64_t first_join_ns, last_join_ns, join_late_max_ns;
    uint64_t frames[NKINDS], bytes[NKINDS], wire_bytes;
    uint64_t redundant, leaves, foreign, out_of_order, complete_end, state_without_self;
    uint64_t hist_state[HBUCKETS]; /* phx_join -> presence_state read in full */
    /* crossnode: send -> read on node B's subscribers (hist: node A's), and
     * per node and publisher: unique deliveries, duplicates, and deliveries
     * of a sequence number lower than one already received */
    uint64_t hist_x[HBUCKETS];
    uint64_t xrecv[2][MAXPUB], xdup[2][MAXPUB], xooo[2][MAXPUB];
} wstat_t;

static wstat_t *ST;            /* this process's slot (the parent's is private) */
static uint64_t received_local; /* mirrors ST->received without a locked add */

#define RELAXED memory_order_relaxed
#define INC(field) atomic_fetch_add_explicit(&ST->field, 1, RELAXED)

/* ---- the WebSocket connection --------------------------------------------- */

/* C_OPEN: upgraded, not joined (presence: the join waits for its slot). */
enum { C_FREE, C_CONNECTING, C_UPGRADING, C_OPEN, C_JOINING, C_JOINED, C_DEAD };

/* What a connection is for: a worker's subscriber, or one of the parent's. */
enum { R_SUB, R_PUBLISHER, R_HEARTBEAT, R_PROBE };

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t role;
    uint8_t pending;     /* counted in `pending` */
    uint8_t epollout;    /* EPOLLOUT currently registered */
    uint8_t got_state;   /* presence: presence_state seen */
    uint8_t converged;   /* presence: the view has held all N keys */
    uint32_t index;      /* connection number; presence: its user is "u<index>" */
    uint8_t *in;         /* bytes of a partial frame carried to the next read */
    uint32_t inlen, incap;
    uint8_t *out;        /* bytes the kernel did not take yet */
    uint32_t outlen, outcap;
    uint64_t next_seq;   /* the broadcast sequence number expected next */
    uint64_t *seen;      /* presence: the view, a bitmap of user indexes */
    uint32_t nseen;      /* presence: keys in the view */
    uint64_t join_ns, reply_ns, state_ns; /* phx_join written, reply read, presence_state read */
    uint64_t *pub_next;  /* crossnode: per publisher, the sequence number expected next */
    uint8_t node;        /* crossnode: 0 = node A (--port), 1 = node B (--port-b) */
    int port;            /* the server port this connection goes to */
    char accept[32];     /* the Sec-WebSocket-Accept we expect */
} conn_t;

#define RBUF (256 * 1024)
#define MAX_FRAME (64u << 20) /* largest server frame accepted */
static uint8_t rbuf[RBUF];
static int ep = -1;             /* this process's epoll */
static int pending;             /* connections started but not yet joined (presence:
                                   upgraded) or failed */
static int presence;            /* presence mode */
static char bcast_prefix[256];  /* [null,null,"<topic>","msg",{"b":" */
static size_t bcast_prefix_len;
static char state_prefix[256], diff_prefix[256]; /* [null,null,"<topic>","presence_xxx", */
static size_t state_prefix_len, diff_prefix_len;
static uint64_t pub_acks, pub_echo; /* publisher: ok replies, own broadcasts */
static int fail_logs;
static int crossnode;           /* crossnode mode */
static int worker_index;        /* this worker's number (the parent: -1) */
/* crossnode: per worker, 4 arrays of O.messages read times (ns, 0: none):
 * the first and the last read of message k on node A, then on node B; in
 * shared memory, each worker writing its own. */
static uint64_t *msg_rx;
enum { RX_FIRST_A, RX_LAST_A, RX_FIRST_B, RX_LAST_B, RX_N };

/* The connection is no longer pending: joined, upgraded (presence) or failed. */
static void unpend(conn_t *c) {
    if (c->pending) {
        c->pending = 0;
        pending--;
    }
}

/* A connection that was up (joined, or upgraded and waiting to join) counts
 * as closed; one that never got there as failed. */
static void conn_fail(conn_t *c, const char *why, int err) {
    if (c->state == C_DEAD || c->state == C_FREE)
        return;
    int was_up = c->state == C_JOINED || c->state == C_OPEN;
    if (fail_logs++ < 5)
        fprintf(stderr, "fanout_bench[%d]: connection %u %s: %s%s%s\n", (int)getpid(), c->index,
                was_up ? "closed" : "failed", why, err ? ": " : "", err ? strerror(err) : "");
    if (was_up)
        INC(closed);
    else
        INC(failed);
    unpend(c);
    close(c->fd);
    c->state = C_DEAD;
    free(c->in);
    free(c->out);
    free(c->seen);
    free(c->pub_next);
    c->in = c->out = NULL;
    c->seen = NULL;
    c->pub_next = NULL;
    c->inlen = c->incap = c->outlen = c->outcap = 0;
}

static void set_epollout(conn_t *c, int on) {
    if (c->epollout == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev))
        die("epoll_ctl: %s", strerror(errno));
    c->epollout = (uint8_t)on;
}

/* Writes what is queued; whatever the kernel does not take waits for EPOLLOUT. */
static void conn_flush(conn_t *c) {
    uint32_t off = 0;
    while (off < c->outlen) {
        ssize_t n = write(c->fd, c->out + off, c->outlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_fail(c, "write", errno);
            return;
        }
        off += (uint32_t)n;
    }
    memmove(c->out, c->out + off, c->outlen - off);
    c->outlen -= off;
    set_epollout(c, c->outlen > 0);
}

static uint8_t *out_reserve(conn_t *c, size_t n) {
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 256;
        while (cap < c->outlen + n)
            cap *= 2;
        if (!(c->out = realloc(c->out, cap)))
            die("out of memory");
        c->outcap = (uint32_t)cap;
    }
    return c->out + c->outlen;
}

/* Queues one client frame (FIN set, masked with a fresh key per RFC 6455
 * 5.3). Call conn_flush() afterwards. */
static void ws_queue(conn_t *c, int opcode, const void *data, size_t len) {
    uint8_t *p = out_reserve(c, len + 14), *start = p;
    *p++ = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t key = (uint32_t)rnd64();
    uint8_t mask[4];
    memcpy(mask, &key, 4);
    memcpy(p, mask, 4);
    p += 4;
    const uint8_t *d = data;
    for (size_t i = 0; i < len; i++)
        p[i] = d[i] ^ mask[i & 3];
    c->outlen += (uint32_t)(p + len - start);
}

static void ws_send_text(conn_t *c, const char *s, size_t len) {
    ws_queue(c, 0x1, s, len);
    conn_flush(c);
}

/* crossnode: the node of subscriber `index`: the first --conns are node A's,
 * the next --conns node B's. Worker w owns w, w + W, w + 2W, ..., so every
 * worker has as many of each node's subscribers (give or take one), and
 * client-side delays fall on both nodes alike. */
static int xn_per_node; /* --conns as given */

static int node_of(int index) {
    return index >= xn_per_node;
}

static void conn_open(conn_t *c, int index, int role) {
    memset(c, 0, sizeof *c);
    c->state = C_CONNECTING;
    c->role = (uint8_t)role;
    c->index = (uint32_t)index;
    c->port = O.port;
    if (crossnode && role == R_SUB) {
        c->node = (uint8_t)node_of(index);
        c->port = c->node ? O.port_b : O.port;
        if (!(c->seen = calloc(((size_t)O.messages + 63) / 64, sizeof *c->seen)) ||
            !(c->pub_next = calloc((size_t)O.publishers, sizeof *c->pub_next)))
            die("out of memory");
    }
    c->pending = 1;
    pending++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_FREE;
        unpend(c);
        INC(failed);
        if (fail_logs++ < 5)
            fprintf(stderr, "fanout_bench: socket: %s\n", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (O.src_ips > 1) {
        /* Choose the source address now but the port at connect(), so each
         * source address has its own ephemeral port range. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(index % O.src_ips));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src)) {
            conn_fail(c, "bind", errno);
            return;
        }
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    inet_pton(AF_INET, O.host, &dst.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS) {
        conn_fail(c, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev))
        die("epoll_ctl: %s", strerror(errno));
    c->epollout = 1;
}

/* The TCP connection is up: send the upgrade request. */
static void conn_connected(conn_t *c) {
    uint8_t raw[16];
    char key[32], both[128];
    uint8_t digest[20];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rnd64();
        memcpy(raw + i, &r, 8);
    }
    base64(raw, 16, key);
    int n = snprintf(both, sizeof both, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    sha1((uint8_t *)both, (size_t)n, digest);
    base64(digest, 20, c->accept);
    char req[512];
    n = snprintf(req, sizeof req,
                 "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 O.host, c->port, key);
    memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
    c->outlen += (uint32_t)n;
    c->state = C_UPGRADING;
    conn_flush(c);
}

/* Finds header `name` in an HTTP header block; returns its value (trimmed)
 * and length, or NULL. */
static const char *http_header(const char *h, size_t len, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    const char *end = h + len, *line = h;
    while (line < end) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

/* Writes ["1","1","<topic>","phx_join",<payload>]: join_ref "1", ref "1". */
static void conn_join(conn_t *c, const char *payload) {
    char join[600];
    int n = snprintf(join, sizeof join, "[\"1\",\"1\",\"%s\",\"phx_join\",%s]", O.topic, payload);
    c->state = C_JOINING;
    c->join_ns = now_ns();
    ws_send_text(c, join, (size_t)n);
}

/* Parses the 101 response; returns the bytes it used, 0 if incomplete, or -1
 * (connection failed). Then joins at once, except in presence mode, where
 * the join waits for its slot in the schedule (or, for the parent's
 * heartbeat and probe sockets, for the parent). */
static long upgrade_response(conn_t *c, const uint8_t *buf, size_t len) {
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > 8192) {
            conn_fail(c, "upgrade response too long", 0);
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(end - buf) + 2, vlen;
    const char *h = (const char *)buf;
    if (hlen < 12 || memcmp(h, "HTTP/1.1 101", 12)) {
        conn_fail(c, "no 101 response", 0);
        return -1;
    }
    const char *acc = http_header(h, hlen, "Sec-WebSocket-Accept", &vlen);
    if (!acc || vlen != strlen(c->accept) || memcmp(acc, c->accept, vlen)) {
        conn_fail(c, "bad Sec-WebSocket-Accept", 0);
        return -1;
    }
    if (presence) {
        c->state = C_OPEN;
        unpend(c);
        if (!(c->seen = calloc(((size_t)O.conns + 63) / 64, sizeof *c->seen)))
            die("out of memory");
    } else {
        conn_join(c, "{}");
    }
    return (long)(hlen + 2);
}

static int has(const uint8_t *p, size_t n, const char *needle) {
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

/* Reads "<decimal>:" at *q; returns -1 if there is none. */
static int64_t dec_field(const uint8_t **q, const uint8_t *e) {
    const uint8_t *p = *q;
    uint64_t v = 0;
    while (p < e && *p >= '0' && *p <= '9' && p - *q < 20)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == *q || p >= e || *p != ':')
        return -1;
    *q = p + 1;
    return (int64_t)v;
}

/* Crossnode: the body is "<publisher>:<seq>:<sent_ns>:xxx...". Message k =
 * seq * P + publisher (publisher k % P sends message k as its seq k / P).
 * A message read twice by one subscriber is a duplicate and is not timed
 * again; one with a sequence number lower than its publisher's latest
 * already read is out of order. */
static void on_broadcast_x(conn_t *c, const uint8_t *q, const uint8_t *e, uint64_t now) {
    int64_t pub = dec_field(&q, e), seq = dec_field(&q, e), sent = dec_field(&q, e);
    if (pub < 0 || seq < 0 || sent < 0 || pub >= O.publishers) {
        INC(bad);
        return;
    }
    if (c->role == R_PUBLISHER) {
        pub_echo++;
        return;
    }
    uint64_t k = (uint64_t)seq * (uint64_t)O.publishers + (uint64_t)pub;
    if (k >= (uint64_t)O.messages || c->role != R_SUB) {
        INC(bad);
        return;
    }
    int node = c->node;
    uint64_t bit = 1ull << (k & 63), *w = &c->seen[k >> 6];
    if (*w & bit) {
        ST->xdup[node][pub]++;
        return;
    }
    *w |= bit;
    ST->xrecv[node][pub]++;
    if ((uint64_t)seq < c->pub_next[pub])
        ST->xooo[node][pub]++;
    else
        c->pub_next[pub] = (uint64_t)seq + 1;
    received_local++;
    atomic_store_explicit(&ST->last_rx_ns, now, RELAXED);
    uint64_t warm = (uint64_t)O.rate * (uint64_t)O.warmup_ms / 1000u;
    if (k >= warm) {
        uint64_t us = now > (uint64_t)sent ? (now - (uint64_t)sent) / 1000 : 0;
        (node ? ST->hist_x : ST->hist)[hbucket(us)]++;
    }
    uint64_t *rx = msg_rx + ((size_t)worker_index * RX_N + (size_t)node * 2) * (size_t)O.messages;
    if (!rx[k] || now < rx[k]) /* first read */
        rx[k] = now;
    rx += O.messages;
    if (now > rx[k]) /* last read */
        rx[k] = now;
}

/* A broadcast: [null,null,"<topic>","msg",{"b":"<seq>:<sent_ns>:xxx..."}]. */
static void on_broadcast(conn_t *c, const uint8_t *p, size_t n, uint64_t now) {
    if (crossnode) {
        on_broadcast_x(c, p + bcast_prefix_len, p + n, now);
        return;
    }
    if (presence) { /* the check message after the storm */
        if (c->role == R_SUB)
            atomic_fetch_add_explicit(&ST->after_msgs, 1, memory_order_release);
        return;
    }
    const uint8_t *q = p + bcast_prefix_len, *e = p + n;
    uint64_t seq = 0, sent = 0;
    while (q < e && *q >= '0' && *q <= '9')
        seq = seq * 10 + (uint64_t)(*q++ - '0');
    if (q >= e || *q++ != ':') {
        INC(bad);
        return;
    }
    while (q < e && *q >= '0' && *q <= '9')
        sent = sent * 10 + (uint64_t)(*q++ - '0');
    if (c->role == R_PUBLISHER) {
        pub_echo++;
        return;
    }
    if (seq != c->next_seq)
        INC(gaps);
    c->next_seq = seq + 1;
    received_local++;
    atomic_store_explicit(&ST->last_rx_ns, now, RELAXED);
    ST->hist[hbucket(now > sent ? (now - sent) / 1000 : 0)]++;
}

/* ---- presence views -------------------------------------------------------- */

/* Worker-wide, for the CPU snapshot when the worker's last client converges. */
static uint64_t worker_cpu0, worker_user0;
static int worker_conns, worker_converged;

/* One presence key of a state or diff: "u<i>" is user i. side 1: a join,
 * -1: a leave. Every user has one connection, hence one meta, so a leave
 * removes the key. */
static void view_key(conn_t *c, const uint8_t *k, size_t len, int side) {
    uint64_t i = 0;
    size_t j = 1;
    for (; j < len && j < 10 && k[j] >= '0' && k[j] <= '9'; j++)
        i = i * 10 + (uint64_t)(k[j] - '0');
    if (len < 2 || k[0] != 'u' || j != len || i >= (uint64_t)O.conns || !side) {
        ST->foreign++;
        return;
    }
    uint64_t bit = 1ull << (i & 63), *w = &c->seen[i >> 6];
    if (side > 0) {
        if (*w & bit) {
            ST->redundant++;
        } else {
            *w |= bit;
            c->nseen++;
        }
    } else {
        ST->leaves++;
        if (*w & bit) {
            *w &= ~bit;
            c->nseen--;
        }
    }
}

/* Applies one payload to c's view: presence_state {key: {"metas": [...]},
 * ...} or presence_diff {"joins": {key: ...}, "leaves": {key: ...}}. A
 * minimal scan, not a parser: strings are skipped with memchr, brackets
 * counted; a string read where an object key is expected (after "{", or
 * after "," inside an object) is a key, and keys at depth 1 (state) or 2
 * (diff, under "joins"/"leaves") are presence keys. The server's JSON is
 * trusted to be well formed; -1 if it ends early or nests too deep. */
static int view_apply(conn_t *c, int kind, const uint8_t *p, const uint8_t *e) {
    uint64_t objects = 0; /* bit d: the container at depth d is an object */
    int depth = 0, want_key = 0, side = 0, key_depth = kind == K_STATE ? 1 : 2;
    if (kind == K_STATE)
        side = 1;
    while (p < e) {
        switch (*p++) {
        case '"': {
            const uint8_t *str = p, *q;
            for (;;) { /* the closing quote: one preceded by an even run of '\\' */
                if (!(q = memchr(p, '"', (size_t)(e - p))))
                    return -1;
                p = q + 1;
                size_t bs = 0;
                while (q - bs > str && q[-1 - (ptrdiff_t)bs] == '\\')
                    bs++;
                if (!(bs & 1))
                    break;
            }
            if (want_key) {
                size_t len = (size_t)(q - str);
                if (depth == key_depth)
                    view_key(c, str, len, side);
                else if (kind == K_DIFF && depth == 1)
                    side = len == 5 && !memcmp(str, "joins", 5)    ? 1
                           : len == 6 && !memcmp(str, "leaves", 6) ? -1
                                                                    : 0;
                want_key = 0;
            }
            break;
        }
        case '{':
        case '[':
            if (++depth > 63)
                return -1;
            want_key = p[-1] == '{';
            objects = (objects & ~(1ull << depth)) | (uint64_t)want_key << depth;
            break;
        case '}':
        case ']':
            if (--depth == 0)
                return 0;
            want_key = 0;
            break;
        case ',':
            want_key = (int)(objects >> depth & 1);
            break;
        default:
            break;
        }
    }
    return -1;
}

/* A presence_state or presence_diff for c: applied to its view, with the
 * order checked (join reply, then state, then diffs) and convergence noted. */
static void on_presence(conn_t *c, int kind, const uint8_t *p, size_t n, uint64_t now) {
    int second_state = kind == K_STATE && c->got_state, early_diff = kind == K_DIFF && !c->got_state;
    if (c->state != C_JOINED || second_state || early_diff)
        ST->out_of_order++;
    if (kind == K_STATE) {
        c->got_state = 1;
        c->state_ns = now;
        if (c->role == R_SUB && c->join_ns)
            ST->hist_state[hbucket((now - c->join_ns) / 1000)]++;
    }
    if (!c->seen || view_apply(c, kind, p, p + n) < 0) {
        if (fail_logs++ < 5)
            fprintf(stderr, "fanout_bench: cannot read presence payload: %.*s\n",
                    (int)(n < 200 ? n : 200), (const char *)p);
        INC(bad);
        return;
    }
    if (kind == K_STATE && c->role == R_SUB && !(c->seen[c->index >> 6] >> (c->index & 63) & 1))
        ST->state_without_self++; /* its own key comes with a later diff */
    if (!c->converged && c->nseen == (uint32_t)O.conns) {
        c->converged = 1;
        if (c->role != R_SUB)
            return;
        atomic_store_explicit(&ST->last_conv_ns, now, RELAXED);
        atomic_fetch_add_explicit(&ST->converged, 1, memory_order_release);
        if (++worker_converged == worker_conns) {
            ST->cpu_conv_us = cpu_us_self() - worker_cpu0;
            ST->user_conv_us = cpu_user_us_self() - worker_user0;
        }
    }
}

/* Heartbeats on the parent's R_HEARTBEAT socket carry their phase and send
 * time in the ref: [null,"<phase>:<ns>","phoenix","heartbeat",{}]. At most
 * one is outstanding: the next goes once the previous is answered and the
 * interval since its send has passed. A closed loop on purpose: lws reads at
 * most --rx-buffer bytes from a socket per loop iteration, so heartbeats sent
 * faster than the server's loop turns would pile up in the socket, and their
 * round trips would measure that backlog rather than the loop. */
enum { HB_BASE, HB_STORM, HB_PROBE, HB_NPHASES };
static uint64_t hb_hist[HB_NPHASES][HBUCKETS], hb_sent[HB_NPHASES], hb_answered[HB_NPHASES];
static uint64_t hb_probe_max_ns; /* the longest HB_PROBE round trip since reset */
static uint64_t hb_next_ns;      /* the earliest time for the next heartbeat */
static int hb_outstanding;

/* Sends a heartbeat if one is due; returns the milliseconds to wait before
 * asking again (a reply wakes the poll earlier). */
static int heartbeat_tick(conn_t *c, int phase, int interval_ms) {
    uint64_t now = now_ns();
    if (hb_outstanding)
        return interval_ms;
    if (now < hb_next_ns)
        return (int)((hb_next_ns - now + 999999) / 1000000u);
    char m[96];
    int n = snprintf(m, sizeof m, "[null,\"%d:%llu\",\"phoenix\",\"heartbeat\",{}]", phase,
                     (unsigned long long)now);
    hb_sent[phase]++;
    hb_outstanding = 1;
    hb_next_ns = now + (uint64_t)interval_ms * 1000000u;
    ws_send_text(c, m, (size_t)n);
    return interval_ms;
}

/* Returns 1 if p is the reply to one of our heartbeats. */
static int heartbeat_reply(const uint8_t *p, size_t n, uint64_t now) {
    static const char pre[] = "[null,\"";
    if (n < sizeof pre + 2 || memcmp(p, pre, sizeof pre - 1) || !has(p, n, "\"phoenix\""))
        return 0;
    const uint8_t *q = p + sizeof pre - 1, *e = p + n;
    int phase = *q++ - '0';
    uint64_t sent = 0;
    if (phase < 0 || phase >= HB_NPHASES || q >= e || *q++ != ':')
        return 0;
    while (q < e && *q >= '0' && *q <= '9')
        sent = sent * 10 + (uint64_t)(*q++ - '0');
    uint64_t rtt = now > sent ? now - sent : 0;
    hb_outstanding = 0;
    hb_answered[phase]++;
    hb_hist[phase][hbucket(rtt / 1000)]++;
    if (phase == HB_PROBE && rtt > hb_probe_max_ns)
        hb_probe_max_ns = rtt;
    return 1;
}

static void on_text(conn_t *c, const uint8_t *p, size_t n, uint64_t now) {
    if (n >= bcast_prefix_len && !memcmp(p, bcast_prefix, bcast_prefix_len)) {
        on_broadcast(c, p, n, now);
        return;
    }
    int kind = n >= state_prefix_len && !memcmp(p, state_prefix, state_prefix_len) ? K_STATE
               : n >= diff_prefix_len && !memcmp(p, diff_prefix, diff_prefix_len)   ? K_DIFF
                                                                                    : K_OTHER;
    if (!presence && kind != K_OTHER)
        return; /* the server has presence on every topic by default: not ours to check */
    if (presence) {
        ST->frames[kind]++;
        ST->bytes[kind] += n;
        received_local++; /* frames, for the parent's progress check */
        if (kind == K_STATE) {
            on_presence(c, kind, p + state_prefix_len, n - state_prefix_len, now);
            return;
        }
        if (kind == K_DIFF) {
            on_presence(c, kind, p + diff_prefix_len, n - diff_prefix_len, now);
            return;
        }
    }
    int ok = has(p, n, "\"phx_reply\"") && has(p, n, "\"status\":\"ok\"");
    if (c->state == C_JOINING) {
        if (ok && n > 9 && !memcmp(p, "[\"1\",\"1\",", 9)) {
            c->state = C_JOINED;
            c->reply_ns = now;
            unpend(c);
            INC(joined);
            if (presence && c->role == R_SUB)
                ST->hist[hbucket((now - c->join_ns) / 1000)]++;
        } else {
            conn_fail(c, "join refused", 0);
        }
        return;
    }
    if ((c->role == R_PUBLISHER || c->role == R_PROBE) && ok) {
        pub_acks++;
        return;
    }
    if (c->role == R_HEARTBEAT && heartbeat_reply(p, n, now))
        return;
    if (fail_logs++ < 5)
        fprintf(stderr, "fanout_bench: unexpected message: %.*s\n", (int)(n < 200 ? n : 200),
                (const char *)p);
    INC(bad);
}

/* Parses the frames in buf; returns the bytes used (a trailing partial frame
 * is left), or -1 if the connection failed. */
static long ws_frames(conn_t *c, const uint8_t *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *p = buf + off;
        int fin = p[0] & 0x80, opcode = p[0] & 0x0F;
        if (p[1] & 0x80) {
            conn_fail(c, "masked server frame", 0);
            return -1;
        }
        uint64_t plen = p[1] & 0x7F;
        size_t hl = 2;
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hl = 10;
        }
        if (plen > MAX_FRAME) {
            conn_fail(c, "server frame too large for this client", 0);
            return -1;
        }
        if (len - off < hl + plen)
            break;
        const uint8_t *pl = p + hl;
        off += hl + (size_t)plen;
        switch (opcode) {
        case 0x1: /* text */
            if (!fin) {
                INC(bad);
                break;
            }
            on_text(c, pl, (size_t)plen, now);
            break;
        case 0x8: { /* close */
            int code = plen >= 2 ? pl[0] << 8 | pl[1] : 1005;
            atomic_store_explicit(&ST->close_code, code, RELAXED);
            ws_queue(c, 0x8, pl, plen >= 2 ? 2 : 0); /* echo the code (RFC 6455 5.5.1) */
            conn_flush(c);
            if (c->state == C_DEAD)
                return -1;
            char why[64];
            snprintf(why, sizeof why, "close frame, code %d", code);
            conn_fail(c, why, 0);
            return -1;
        }
        case 0x9: /* ping: answer with the same payload */
            ws_queue(c, 0xA, pl, (size_t)plen);
            conn_flush(c);
            break;
        case 0xA: /* pong */
            break;
        default: /* continuation, binary: parley sends neither */
            INC(bad);
            break;
        }
        if (c->state == C_DEAD)
            return -1;
    }
    return (long)off;
}

/* Grows c->in to hold at least `need` bytes. */
static void in_reserve(conn_t *c, size_t need) {
    if (need <= c->incap)
        return;
    size_t cap = c->incap < 256 ? 256 : c->incap;
    while (cap < need)
        cap *= 2;
    if (cap > 2 * (size_t)MAX_FRAME || !(c->in = realloc(c->in, cap)))
        die("out of memory");
    c->incap = (uint32_t)cap;
}

/* Reads what the socket has, after the carried partial frame. Usually that
 * is small and goes in front of the read in the shared rbuf; once it fills
 * half of rbuf (a big frame arriving in pieces), reads go straight into the
 * connection's own buffer, grown as needed and freed when emptied. */
static void conn_readable(conn_t *c) {
    for (;;) {
        size_t have = c->inlen, room;
        uint8_t *buf;
        if (have < RBUF / 2) {
            buf = rbuf;
            if (have)
                memcpy(rbuf, c->in, have);
            room = RBUF - have;
        } else {
            in_reserve(c, have + RBUF);
            buf = c->in;
            room = c->incap - have;
        }
        ssize_t n = read(c->fd, buf + have, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_fail(c, "read", errno);
            return;
        }
        if (n == 0) {
            conn_fail(c, "EOF", 0);
            return;
        }
        ST->wire_bytes += (uint64_t)n;
        uint64_t now = now_ns();
        size_t len = have + (size_t)n;
        long used = 0;
        if (c->state == C_UPGRADING && (used = upgrade_response(c, buf, len)) < 0)
            return;
        if (c->state == C_DEAD)
            return;
        if (c->state != C_UPGRADING) { /* else the response is incomplete: keep it */
            long more = ws_frames(c, buf + used, len - (size_t)used, now);
            if (more < 0)
                return;
            used += more;
        }
        c->inlen = (uint32_t)(len - (size_t)used);
        if (buf == c->in) {
            memmove(c->in, c->in + used, c->inlen);
            if (c->inlen == 0) { /* do not keep a big buffer per connection */
                free(c->in);
                c->in = NULL;
                c->incap = 0;
            }
        } else {
            if (c->incap > RBUF) { /* left from a big frame; its bytes are in rbuf */
                free(c->in);
                c->in = NULL;
                c->incap = 0;
            }
            if (c->inlen) {
                in_reserve(c, c->inlen);
                memcpy(c->in, rbuf + used, c->inlen);
            }
        }
        if ((size_t)n < room)
            return; /* drained */
    }
}

static void conn_event(conn_t *c, uint32_t events) {
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_fail(c, "connect", err);
            return;
        }
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_readable(c);
    if (c->state != C_DEAD && (events & EPOLLOUT))
        conn_flush(c);
}

/* ---- worker processes ----------------------------------------------------- */

static char cmd_tag, notify_tag; /* epoll data.ptr markers for the pipes */

static void notify(int fd) {
    char b = 1;
    while (write(fd, &b, 1) < 0 && errno == EINTR)
        ;
}

/* Presence: writes every phx_join whose slot (t0 + index / rate) has come,
 * whatever the replies so far (open loop); a late worker catches up at once.
 * Returns milliseconds until the next slot, or -1 when all are written. */
static int send_due_joins(conn_t *conns, int count, int *next, uint64_t t0) {
    for (; *next < count; ++*next) {
        conn_t *c = &conns[*next];
        uint64_t due = t0 + (uint64_t)c->index * 1000000000u / (uint64_t)O.rate, now = now_ns();
        if (due > now)
            return (int)((due - now + 999999) / 1000000);
        if (c->state != C_OPEN)
            continue; /* closed before its turn: counted already */
        char payload[96];
        snprintf(payload, sizeof payload, "{\"user\":\"u%u\",\"name\":\"User %u\"}", c->index,
                 c->index);
        conn_join(c, payload);
        if (!ST->first_join_ns)
            ST->first_join_ns = c->join_ns;
        ST->last_join_ns = c->join_ns;
        if (c->join_ns - due > ST->join_late_max_ns)
            ST->join_late_max_ns = c->join_ns - due;
    }
    return -1;
}

/* At "stop": presence views that hold all N keys. */
static uint64_t complete_views(const conn_t *conns, int count) {
    uint64_t k = 0;
    for (int i = 0; i < count; i++)
        k += conns[i].state == C_JOINED && conns[i].nseen == (uint32_t)O.conns;
    return k;
}

/* Owns `count` subscribers, connections first, first + stride, ...; joins
 * them (presence: only upgrades them), reports "ready", then counts
 * broadcasts until told to stop. Commands: 'S' start (CPU snapshot;
 * presence: the join schedule starts, from ST->t0), 'T' stop (CPU snapshot,
 * report, exit). */
static void worker_main(int first, int stride, int count, int cmd_fd, int notify_fd,
                        pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    worker_index = first;
    conn_t *conns = calloc((size_t)count, sizeof *conns);
    if (!conns)
        die("out of memory");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cmd_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, cmd_fd, &ev);
    int opened = 0, ready = 0, joining = 0, next_join = 0;
    uint64_t t0 = 0;
    worker_conns = count;
    struct epoll_event evs[512];
    for (;;) {
        while (opened < count && pending < O.concurrency) {
            conn_open(&conns[opened], first + opened * stride, R_SUB);
            opened++;
        }
        if (!ready && opened == count && pending == 0) {
            ready = 1;
            atomic_store(&ST->ready, 1);
            notify(notify_fd);
        }
        int timeout = joining ? send_due_joins(conns, count, &next_join, t0) : -1;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr != &cmd_tag) {
                conn_event(evs[i].data.ptr, evs[i].events);
                if (joining) /* reading a big presence_state takes a while */
                    send_due_joins(conns, count, &next_join, t0);
                continue;
            }
            char cmd;
            ssize_t r = read(cmd_fd, &cmd, 1);
            if (r == 0)
                _exit(1); /* the parent is gone */
            if (r < 0)
                continue;
            if (cmd == 'S') {
                worker_cpu0 = cpu_us_self();
                worker_user0 = cpu_user_us_self();
                if (presence) {
                    joining = 1;
                    t0 = atomic_load(&ST->t0);
                }
                atomic_store(&ST->started, 1);
                notify(notify_fd);
            } else if (cmd == 'T') {
                atomic_store_explicit(&ST->received, received_local, RELAXED);
                ST->cpu_us = cpu_us_self() - worker_cpu0;
                ST->complete_end = complete_views(conns, count);
                atomic_store(&ST->stopped, 1); /* seq_cst: publishes hist and cpu_us */
                notify(notify_fd);
                _exit(0); /* the kernel closes the sockets */
            }
        }
        /* Release: a parent that sees this count also sees last_rx_ns. */
        atomic_store_explicit(&ST->received, received_local, memory_order_release);
    }
}

/* ---- the parent: workers, publisher, sampling ----------------------------- */

static wstat_t *shared;   /* O.workers slots */
static pid_t *worker_pids;
static int *cmd_fds;
static int notify_rd;
static int stopping;      /* workers were told to stop; their exit is expected */

/* Server CPU samples taken while measuring: (time, ticks); crossnode: also
 * node B's and Redis' ticks. */
typedef struct sample {
    uint64_t t;
    long long ticks, ticks_b, ticks_r;
} sample_t;
static sample_t *samples;
static size_t nsamples, capsamples;
static int sampling;
static uint64_t last_sample_t;
#define SAMPLE_NS 5000000u

static void take_sample(void) {
    if (nsamples == capsamples) {
        capsamples = capsamples ? capsamples * 2 : 4096;
        if (!(samples = realloc(samples, capsamples * sizeof *samples)))
            die("out of memory");
    }
    samples[nsamples].t = last_sample_t = now_ns();
    samples[nsamples].ticks = server_ticks();
    samples[nsamples].ticks_b = pid_ticks(O.server_pid_b);
    samples[nsamples].ticks_r = pid_ticks(O.redis_pid);
    nsamples++;
}

static void kill_workers(void) {
    for (int w = 0; w < O.workers; w++)
        if (worker_pids[w] > 0) {
            kill(worker_pids[w], SIGKILL);
            waitpid(worker_pids[w], NULL, 0);
            worker_pids[w] = 0;
        }
}

static void parent_die(const char *msg) {
    kill_workers();
    die("%s", msg);
}

static void command_all(char cmd) {
    for (int w = 0; w < O.workers; w++)
        if (write(cmd_fds[w], &cmd, 1) != 1)
            parent_die("cannot command a worker");
}

static char tap_tag; /* crossnode: epoll data.ptr marker of the tap socket */
static void tap_readable(void);

/* One turn of the parent's loop: the publisher socket, wake-ups from the
 * workers, a worker that died, and a server CPU sample when due. Waits at
 * most timeout_ns (-1: no limit). */
static void parent_poll_ns(int64_t timeout_ns) {
    struct epoll_event evs[16];
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
    int n = epoll_pwait2(ep, evs, 16, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n < 0 && errno != EINTR)
        parent_die("epoll_wait failed");
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &notify_tag) {
            char b[256];
            while (read(notify_rd, b, sizeof b) > 0)
                ;
        } else if (evs[i].data.ptr == &tap_tag) {
            tap_readable();
        } else {
            conn_event(evs[i].data.ptr, evs[i].events);
        }
    }
    if (!stopping)
        for (int w = 0; w < O.workers; w++)
            if (worker_pids[w] > 0 && waitpid(worker_pids[w], NULL, WNOHANG) == worker_pids[w]) {
                worker_pids[w] = 0;
                parent_die("a worker died");
            }
    if (sampling && now_ns() - last_sample_t >= SAMPLE_NS)
        take_sample();
}

static void parent_poll(int timeout_ms) {
    parent_poll_ns(timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000);
}

static int all_workers(size_t field_offset) {
    for (int w = 0; w < O.workers; w++)
        if (!atomic_load((_Atomic int *)((char *)&shared[w] + field_offset)))
            return 0;
    return 1;
}

static uint64_t sum_u64(size_t field_offset) {
    uint64_t s = 0;
    for (int w = 0; w < O.workers; w++)
        s += atomic_load_explicit((_Atomic uint64_t *)((char *)&shared[w] + field_offset),
                                  memory_order_acquire);
    return s;
}

#define ALL(f) all_workers(offsetof(wstat_t, f))
#define SUM(f) sum_u64(offsetof(wstat_t, f))

static void wait_all(size_t field_offset, int timeout_s, const char *what) {
    uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
    while (!all_workers(field_offset)) {
        if (now_ns() > deadline) {
            fprintf(stderr, "fanout_bench: timed out waiting for workers to be %s "
                            "(joined %llu, failed %llu of %d)\n", what,
                    (unsigned long long)SUM(joined), (unsigned long long)SUM(failed), O.conns);
            parent_die("giving up");
        }
        parent_poll(100);
    }
}

static void sleep_polling(int ms) {
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    for (uint64_t t; (t = now_ns()) < end;)
        parent_poll((int)((end - t) / 1000000u) + 1);
}

/* Opens one of the parent's own sockets and waits (30 s at most) for it to
 * reach state `want`. */
static void parent_conn(conn_t *c, int role, int index, int want, const char *fail) {
    conn_open(c, index, role);
    uint64_t deadline = now_ns() + 30000000000u;
    while (c->state != want) {
        if (c->state == C_DEAD || c->state == C_FREE || now_ns() > deadline)
            parent_die(fail);
        parent_poll(100);
    }
}

static void start_workers(void) {
    if (!(shared = mmap(NULL, (size_t)O.workers * sizeof *shared, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0)) || shared == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    worker_pids = calloc((size_t)O.workers, sizeof *worker_pids);
    cmd_fds = calloc((size_t)O.workers, sizeof *cmd_fds);
    int np[2];
    if (pipe2(np, O_CLOEXEC))
        die("pipe: %s", strerror(errno));
    notify_rd = np[0];
    fcntl(notify_rd, F_SETFL, O_NONBLOCK);
    pid_t parent = getpid();
    fflush(NULL);
    for (int w = 0; w < O.workers; w++) {
        int cp[2];
        if (pipe2(cp, O_CLOEXEC))
            parent_die("pipe failed");
        /* Worker w owns connections w, w + W, w + 2W, ...: in presence mode
         * the join schedule then alternates between the workers. */
        int count = (O.conns - w + O.workers - 1) / O.workers;
        pid_t pid = fork();
        if (pid < 0)
            parent_die("fork failed");
        if (pid == 0) {
            close(cp[1]);
            close(np[0]);
            for (int i = 0; i < w; i++)
                close(cmd_fds[i]);
            ST = &shared[w];
            worker_main(w, O.workers, count, cp[0], np[1], parent);
        }
        close(cp[0]);
        worker_pids[w] = pid;
        cmd_fds[w] = cp[1];
    }
    close(np[1]);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &notify_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, notify_rd, &ev);
}

/* Tells the workers to stop, waits for their last report, reaps them. */
static void stop_workers(void) {
    stopping = 1;
    command_all('T');
    wait_all(offsetof(wstat_t, stopped), 30, "stopped");
    for (int w = 0; w < O.workers; w++) {
        waitpid(worker_pids[w], NULL, 0);
        worker_pids[w] = 0;
    }
}

static void print_join_phase(double secs, long long ticks) {
    printf("join phase: %llu joined, %llu failed of %d in %.2f s", (unsigned long long)SUM(joined),
           (unsigned long long)SUM(failed), O.conns, secs);
    if (ticks >= 0)
        printf(", server CPU %.0f ms (%.1f us per connection)", ticks_ms(ticks),
               ticks_ms(ticks) * 1000.0 / O.conns);
    printf("\n");
}

/* ---- idle ----------------------------------------------------------------- */

static int run_idle(void) {
    long rss0 = status_kb("VmRSS");
    long long cpu0 = server_ticks();
    uint64_t t0 = now_ns();
    start_workers();
    wait_all(offsetof(wstat_t, ready), O.timeout_s, "joined");
    double join_s = (double)(now_ns() - t0) / 1e9;
    long long cpu1 = server_ticks();
    long rss1 = status_kb("VmRSS");
    uint64_t joined = SUM(joined);
    print_join_phase(join_s, cpu0 >= 0 ? cpu1 - cpu0 : -1);

    sleep_polling(O.hold_s * 1000);
    long long cpu2 = server_ticks();
    long rss2 = status_kb("VmRSS"), hwm = status_kb("VmHWM");
    uint64_t closed = SUM(closed);
    stop_workers();

    double per_conn = joined ? (double)(rss1 - rss0) * 1024.0 / (double)joined : 0;
    printf("server VmRSS: %ld kB before, %ld kB after all joined, %ld kB after holding %d s "
           "(VmHWM %ld kB)\n", rss0, rss1, rss2, O.hold_s, hwm);
    printf("server memory per joined connection: %.0f bytes\n", per_conn);
    printf("server CPU while holding %d s: %.0f ms; connections closed by the server: %llu\n",
           O.hold_s, ticks_ms(cpu2 - cpu1), (unsigned long long)closed);
    printf("RESULT mode=idle conns=%d workers=%d joined=%llu failed=%llu closed=%llu "
           "join_s=%.2f server_cpu_join_ms=%.0f rss0_kb=%ld rss1_kb=%ld rss2_kb=%ld hwm_kb=%ld "
           "rss_per_conn_b=%.0f hold_s=%d server_cpu_hold_ms=%.0f\n",
           O.conns, O.workers, (unsigned long long)joined, (unsigned long long)SUM(failed),
           (unsigned long long)closed, join_s, ticks_ms(cpu1 - cpu0), rss0, rss1, rss2, hwm,
           per_conn, O.hold_s, ticks_ms(cpu2 - cpu1));
    return joined == (uint64_t)O.conns && closed == 0 ? 0 : 1;
}

/* ---- fanout --------------------------------------------------------------- */

/* One publish: ["1","<ref>","<topic>","msg",{"b":"<seq>:<now_ns>:xxx"}]
 * with the "b" string padded to exactly O.payload bytes. */
static void publish(conn_t *pub, uint64_t seq) {
    static char *frame;
    static size_t cap;
    size_t need = (size_t)O.payload + strlen(O.topic) + 96;
    if (need > cap && !(frame = realloc(frame, cap = need)))
        die("out of memory");
    int n = snprintf(frame, cap, "[\"1\",\"%llu\",\"%s\",\"msg\",{\"b\":\"%llu:%llu:",
                     (unsigned long long)seq + 2, O.topic, (unsigned long long)seq,
                     (unsigned long long)now_ns());
    size_t body = (size_t)n - (size_t)(strstr(frame, "{\"b\":\"") + 6 - frame);
    if (body < (size_t)O.payload) {
        memset(frame + n, 'x', (size_t)O.payload - body);
        n += O.payload - (int)body;
    }
    memcpy(frame + n, "\"}]", 3);
    ws_queue(pub, 0x1, frame, (size_t)n + 3);
}

static double pct_ms(const uint64_t *hist, uint64_t total, double q) {
    if (!total)
        return 0;
    uint64_t want = (uint64_t)((double)total * q), acc = 0;
    if (want >= total)
        want = total - 1;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += hist[i];
        if (acc > want)
            return hbucket_mid_us(i) / 1000.0;
    }
    return 0;
}

static int run_fanout(void) {
    long long cpuj0 = server_ticks();
    uint64_t tj0 = now_ns();
    start_workers();
    wait_all(offsetof(wstat_t, ready), O.timeout_s, "joined");
    print_join_phase((double)(now_ns() - tj0) / 1e9,
                     cpuj0 >= 0 ? server_ticks() - cpuj0 : -1);
    uint64_t subs = SUM(joined);

    /* The publisher: the parent's own connection, joined like the others. */
    static wstat_t pubst;
    ST = &pubst;
    conn_t pub;
    parent_conn(&pub, R_PUBLISHER, 0, C_JOINED, "the publisher could not join");
    long rss_joined = status_kb("VmRSS");
    sleep_polling(O.settle_ms);

    /* Measure: workers snapshot their CPU first, then the first send. */
    command_all('S');
    wait_all(offsetof(wstat_t, started), 30, "started");
    uint64_t expected = subs * (uint64_t)O.messages;
    sampling = 1;
    machine_t m0 = machine_ticks();
    take_sample();
    uint64_t t0 = samples[0].t, pcpu0 = cpu_us_self();
    uint64_t next_send = t0, last_change = t0, last_total = 0, sent = 0;
    uint64_t timeout = t0 + (uint64_t)O.timeout_s * 1000000000u, now;
    const char *ended = "complete";
    for (;;) {
        now = now_ns();
        if (sent < (uint64_t)O.messages && now >= next_send) {
            do /* a burst queues everything at once */
                publish(&pub, sent++);
            while (O.interval_ms == 0 && sent < (uint64_t)O.messages);
            conn_flush(&pub);
            next_send += (uint64_t)O.interval_ms * 1000000u;
            last_change = now = now_ns(); /* keep now >= last_change */
            if (pub.state == C_DEAD)
                parent_die("the publisher's connection closed");
        }
        uint64_t total = SUM(received);
        if (total != last_total)
            last_total = total, last_change = now;
        if (sent == (uint64_t)O.messages && total >= expected)
            break;
        if (sent == (uint64_t)O.messages && now - last_change > (uint64_t)O.quiet_ms * 1000000u) {
            ended = "quiet";
            break;
        }
        if (now > timeout) {
            ended = "timeout";
            break;
        }
        int wait_ms = SAMPLE_NS / 1000000u;
        if (sent < (uint64_t)O.messages && next_send > now &&
            (next_send - now) / 1000000u < (uint64_t)wait_ms)
            wait_ms = (int)((next_send - now) / 1000000u);
        parent_poll(wait_ms);
    }
    take_sample();
    uint64_t pcpu = cpu_us_self() - pcpu0;
    machine_t m1 = machine_ticks();
    double busy_pct = busy_between(m0, m1);
    double steal_pct = m1.all > m0.all ? 100.0 * (double)(m1.steal - m0.steal) /
                                             (double)(m1.all - m0.all) : 0;
    sampling = 0;
    long hwm = status_kb("VmHWM"), rss_end = status_kb("VmRSS");
    /* Let the publisher drain its replies and echoes (not measured). */
    uint64_t drain_end = now_ns() + 2000000000u;
    while ((pub_acks < sent || pub_echo < sent) && pub.state == C_JOINED && now_ns() < drain_end)
        parent_poll(10);
    stop_workers();

    uint64_t received = SUM(received), t_last = 0, bench_us = pcpu;
    static uint64_t hist[HBUCKETS];
    for (int w = 0; w < O.workers; w++) {
        uint64_t t = atomic_load(&shared[w].last_rx_ns);
        if (t > t_last)
            t_last = t;
        bench_us += shared[w].cpu_us;
        for (int i = 0; i < HBUCKETS; i++)
            hist[i] += shared[w].hist[i];
    }
    /* Server CPU at the last delivery: the first sample taken at or after it. */
    long long cpu_end = samples[nsamples - 1].ticks;
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].t >= t_last) {
            cpu_end = samples[i].ticks;
            break;
        }
    double wall_s = t_last > t0 ? (double)(t_last - t0) / 1e9 : 0;
    double srv_ms = ticks_ms(cpu_end - samples[0].ticks);
    double srv_us = received ? srv_ms * 1000.0 / (double)received : 0;
    double bench_ms = (double)bench_us / 1000.0;
    double bench_per = received ? (double)bench_us / (double)received : 0;
    double p50 = pct_ms(hist, received, 0.50), p99 = pct_ms(hist, received, 0.99),
           pmax = pct_ms(hist, received, 1.0);
    uint64_t gaps = SUM(gaps), closed = SUM(closed), bad = SUM(bad);
    int close_code = 0;
    for (int w = 0; w < O.workers; w++)
        if (shared[w].close_code)
            close_code = shared[w].close_code;

    printf("deliveries: %llu of %llu expected (%llu subscribers x %d messages), ended: %s\n",
           (unsigned long long)received, (unsigned long long)expected,
           (unsigned long long)subs, O.messages, ended);
    printf("wall time first send -> last delivery: %.3f s (%.0f deliveries/s)\n", wall_s,
           wall_s > 0 ? (double)received / wall_s : 0);
    printf("server CPU: %.0f ms, %.2f us per delivery\n", srv_ms, srv_us);
    printf("bench CPU (%d workers + publisher): %.0f ms, %.2f us per delivery\n", O.workers,
           bench_ms, bench_per);
    printf("latency send -> read: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, pmax);
    printf("out-of-order/missing sequence numbers: %llu; bad frames: %llu; closed by server: "
           "%llu (last close code %d); publisher acks %llu, echoes %llu of %llu\n",
           (unsigned long long)gaps, (unsigned long long)bad, (unsigned long long)closed,
           close_code, (unsigned long long)pub_acks, (unsigned long long)pub_echo,
           (unsigned long long)sent);
    printf("server VmRSS: %ld kB after all joined, %ld kB at the end, VmHWM %ld kB\n",
           rss_joined, rss_end, hwm);
    /* Of the machine's CPU over the window, the share server and bench used:
     * the rest is other processes and kernel threads. */
    double ours_pct = m1.all > m0.all
                          ? 100.0 * ((double)(cpu_end - samples[0].ticks) +
                                     (double)bench_us * (double)sysconf(_SC_CLK_TCK) / 1e6) /
                                (double)(m1.all - m0.all)
                          : 0;
    printf("machine CPU busy during the measurement: %.0f %% of %ld cores (steal %.1f %%); "
           "server + bench account for %.0f %%\n", busy_pct, sysconf(_SC_NPROCESSORS_ONLN),
           steal_pct, ours_pct);
    printf("RESULT mode=fanout conns=%d workers=%d messages=%d interval_ms=%d payload=%d "
           "subs=%llu expected=%llu received=%llu ended=%s wall_s=%.3f rate=%.0f "
           "server_cpu_ms=%.0f server_us_per_delivery=%.2f bench_cpu_ms=%.0f "
           "bench_us_per_delivery=%.2f lat_p50_ms=%.2f lat_p99_ms=%.2f lat_max_ms=%.2f "
           "gaps=%llu bad=%llu closed=%llu close_code=%d pub_acks=%llu pub_echo=%llu "
           "rss_joined_kb=%ld rss_end_kb=%ld hwm_kb=%ld machine_busy_pct=%.0f ours_pct=%.0f "
           "steal_pct=%.1f\n",
           O.conns, O.workers, O.messages, O.interval_ms, O.payload, (unsigned long long)subs,
           (unsigned long long)expected, (unsigned long long)received, ended, wall_s,
           wall_s > 0 ? (double)received / wall_s : 0, srv_ms, srv_us, bench_ms, bench_per, p50,
           p99, pmax, (unsigned long long)gaps, (unsigned long long)bad,
           (unsigned long long)closed, close_code, (unsigned long long)pub_acks,
           (unsigned long long)pub_echo, rss_joined, rss_end, hwm, busy_pct, ours_pct,
           steal_pct);
    return received == expected && gaps == 0 && closed == 0 ? 0 : 1;
}

/* ---- presence ------------------------------------------------------------- */

static uint64_t hist_total(const uint64_t *hist) {
    uint64_t n = 0;
    for (int i = 0; i < HBUCKETS; i++)
        n += hist[i];
    return n;
}

/* Waits (at most 10 s) for the outstanding heartbeat's reply. */
static void heartbeat_settle(void) {
    uint64_t deadline = now_ns() + 10000000000u;
    while (hb_outstanding && now_ns() < deadline)
        parent_poll(10);
}

/* Heartbeats every --hb-ms on the parent's heartbeat socket for `ms`. */
static void heartbeats_for(conn_t *hb, int phase, int ms) {
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    for (uint64_t t; (t = now_ns()) < end;) {
        int wait = heartbeat_tick(hb, phase, O.hb_ms);
        int left = (int)((end - t + 999999) / 1000000u);
        parent_poll(wait < left ? wait : left);
    }
    heartbeat_settle();
}

/* A probe: one of the parent's upgraded sockets joins the full room without
 * a "user" (untracked, so no presence_diff follows), and heartbeats go out on
 * the heartbeat socket, one per millisecond at most, from right after the
 * join until the presence_state is in: the longest round trip shows how long
 * the server's loop was busy with the join. 10 s at most. */
typedef struct probe {
    double reply_ms, state_ms, hb_max_ms; /* -1: did not happen */
    uint32_t keys;
} probe_t;

static probe_t run_probe(conn_t *c, conn_t *hb) {
    probe_t r = {-1, -1, -1, 0};
    heartbeat_settle();
    uint64_t answered = hb_answered[HB_PROBE];
    hb_probe_max_ns = 0;
    hb_next_ns = 0;
    conn_join(c, "{}");
    uint64_t deadline = now_ns() + 10000000000u;
    while (c->state != C_DEAD && now_ns() < deadline) {
        if (!c->got_state)
            heartbeat_tick(hb, HB_PROBE, 1);
        else if (!hb_outstanding)
            break;
        parent_poll(1);
    }
    if (c->reply_ns)
        r.reply_ms = (double)(c->reply_ns - c->join_ns) / 1e6;
    if (c->got_state) {
        r.state_ms = (double)(c->state_ns - c->join_ns) / 1e6;
        r.keys = c->nseen;
    }
    if (hb_answered[HB_PROBE] > answered)
        r.hb_max_ms = (double)hb_probe_max_ns / 1e6;
    return r;
}

static int run_presence(void) {
    /* Connect and upgrade everyone; nobody joins yet. */
    long rss0 = status_kb("VmRSS");
    long long cpuc0 = server_ticks();
    uint64_t tc0 = now_ns();
    start_workers();
    wait_all(offsetof(wstat_t, ready), O.timeout_s, "connected");
    printf("connect phase: %d connections upgraded, %llu failed, in %.2f s", O.conns,
           (unsigned long long)SUM(failed), (double)(now_ns() - tc0) / 1e9);
    if (cpuc0 >= 0)
        printf(", server CPU %.0f ms", ticks_ms(server_ticks() - cpuc0));
    printf("\n");
    conn_t hb, probes[2];
    parent_conn(&hb, R_HEARTBEAT, O.conns, C_OPEN, "the heartbeat socket could not connect");
    for (int k = 0; k < 2; k++)
        parent_conn(&probes[k], R_PROBE, O.conns + 1 + k, C_OPEN, "a probe could not connect");
    long rss_conn = status_kb("VmRSS");
    heartbeats_for(&hb, HB_BASE, O.settle_ms); /* the idle server's round trip */

    /* The storm: join i is due at t0 + i / rate. */
    uint64_t t0 = now_ns() + 20000000u; /* time for the workers to read 'S' */
    for (int w = 0; w < O.workers; w++)
        atomic_store(&shared[w].t0, t0);
    sampling = 1;
    machine_t m0 = machine_ticks();
    take_sample();
    uint64_t pcpu0 = cpu_us_self();
    long long runq0 = server_runq_ns();
    command_all('S');
    uint64_t joins_end = t0 + (uint64_t)(O.conns - 1) * 1000000000u / (uint64_t)O.rate;
    uint64_t deadline = t0 + (uint64_t)O.timeout_s * 1000000000u;
    uint64_t last_change = joins_end, conv = 0, frames_seen = 0, now;
    hb_next_ns = t0;
    const char *ended = "converged";
    while ((conv = SUM(converged)) < (uint64_t)O.conns) {
        now = now_ns();
        uint64_t f = SUM(received); /* frames: any progress at all */
        if (f != frames_seen) {
            frames_seen = f;
            if (now > last_change)
                last_change = now;
        }
        if (now > last_change + (uint64_t)O.quiet_ms * 1000000u) {
            ended = "quiet";
            break;
        }
        if (now > deadline) {
            ended = "timeout";
            break;
        }
        int wait = now >= t0 ? heartbeat_tick(&hb, HB_STORM, O.hb_ms) : 1;
        if (hb.state == C_DEAD)
            parent_die("the server closed the heartbeat socket");
        parent_poll(wait < (int)(SAMPLE_NS / 1000000u) ? wait : (int)(SAMPLE_NS / 1000000u));
    }
    take_sample();
    long long runq1 = server_runq_ns();
    double runq_ms = runq0 >= 0 && runq1 >= 0 ? (double)(runq1 - runq0) / 1e6 : -1;
    uint64_t parent_us = cpu_us_self() - pcpu0;
    machine_t m1 = machine_ticks();
    sampling = 0;
    heartbeat_settle(); /* the storm's last heartbeat */

    /* Probes into the full room; then one chat message from a probe, which
     * every client must get (10 s at most): a check that no socket's queue
     * was left behind; then a quiet tail. */
    probe_t pr[2];
    for (int k = 0; k < 2; k++) {
        sleep_polling(200);
        pr[k] = run_probe(&probes[k], &hb);
    }
    uint64_t t_msg = now_ns(), msg_end = t_msg + 10000000000u, after = 0;
    publish(&probes[1], 0);
    conn_flush(&probes[1]);
    while ((after = SUM(after_msgs)) < (uint64_t)O.conns && now_ns() < msg_end)
        parent_poll(1);
    double msg_ms = (double)(now_ns() - t_msg) / 1e6;
    sleep_polling(O.settle_ms);
    long hwm = status_kb("VmHWM"), rss_end = status_kb("VmRSS");
    stop_workers();

    /* Sum up the workers. */
    uint64_t first_join = 0, last_join = 0, late_max = 0, t_conv = 0, client_us = 0,
             client_user_us = 0;
    uint64_t frames[NKINDS] = {0}, bytes[NKINDS] = {0}, wire = 0, redundant = 0, leaves = 0,
             foreign = 0, disorder = 0, complete = 0, no_self = 0;
    static uint64_t hist_reply[HBUCKETS], hist_state[HBUCKETS];
    for (int w = 0; w < O.workers; w++) {
        wstat_t *x = &shared[w];
        if (x->first_join_ns && (!first_join || x->first_join_ns < first_join))
            first_join = x->first_join_ns;
        if (x->last_join_ns > last_join)
            last_join = x->last_join_ns;
        if (x->join_late_max_ns > late_max)
            late_max = x->join_late_max_ns;
        if (atomic_load(&x->last_conv_ns) > t_conv)
            t_conv = atomic_load(&x->last_conv_ns);
        /* Not converged: its CPU up to "stop", and no user/kernel split. */
        client_us += x->cpu_conv_us ? x->cpu_conv_us : x->cpu_us;
        client_user_us += x->user_conv_us;
        for (int k = 0; k < NKINDS; k++)
            frames[k] += x->frames[k], bytes[k] += x->bytes[k];
        wire += x->wire_bytes;
        redundant += x->redundant, leaves += x->leaves, foreign += x->foreign;
        disorder += x->out_of_order, complete += x->complete_end;
        no_self += x->state_without_self;
        for (int i = 0; i < HBUCKETS; i++)
            hist_reply[i] += x->hist[i], hist_state[i] += x->hist_state[i];
    }
    int converged = conv >= (uint64_t)O.conns;
    uint64_t t_end = converged ? t_conv : samples[nsamples - 1].t;
    long long cpu_end = samples[nsamples - 1].ticks;
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].t >= t_end) {
            cpu_end = samples[i].ticks;
            break;
        }
    double srv_ms = ticks_ms(cpu_end - samples[0].ticks);
    double last_join_s = (double)(last_join - first_join) / 1e9;
    double conv_s = converged ? (double)(t_conv - first_join) / 1e9 : -1;
    double delay_ms = converged ? ((double)t_conv - (double)last_join) / 1e6 : -1;
    double client_ms = (double)client_us / 1000.0, client_user_ms = (double)client_user_us / 1000.0;
    double parent_ms = (double)parent_us / 1000.0;
    double window_ms = (double)(t_end - t0) / 1e6;
    double busy_pct = busy_between(m0, m1);
    uint64_t joined = SUM(joined), failed = SUM(failed), closed = SUM(closed), bad = SUM(bad);
    uint64_t nframes = frames[K_STATE] + frames[K_DIFF] + frames[K_OTHER];
    int close_code = 0;
    for (int w = 0; w < O.workers; w++)
        if (shared[w].close_code)
            close_code = shared[w].close_code;
#define PCTS(h) pct_ms(h, hist_total(h), 0.50), pct_ms(h, hist_total(h), 0.99), \
                pct_ms(h, hist_total(h), 1.0)
    double jr[3] = {PCTS(hist_reply)}, js[3] = {PCTS(hist_state)};
    double hs[3] = {PCTS(hb_hist[HB_STORM])}, hbase[3] = {PCTS(hb_hist[HB_BASE])};
#undef PCTS

    printf("joins: %llu replied, %llu failed of %d; written at %d/s from t0, the last at "
           "+%.3f s (worst lateness %.2f ms)\n", (unsigned long long)joined,
           (unsigned long long)failed, O.conns, O.rate, last_join_s, (double)late_max / 1e6);
    printf("convergence: %llu of %d views complete (%s); the last at +%.3f s, %.0f ms after "
           "the last join\n", (unsigned long long)conv, O.conns, ended, conv_s, delay_ms);
    printf("frames to the %d clients: presence_state %llu (%.1f MB), presence_diff %llu "
           "(%.1f MB), other %llu (%.1f MB); %llu frames, %.1f MB on the wire\n", O.conns,
           (unsigned long long)frames[K_STATE], (double)bytes[K_STATE] / 1e6,
           (unsigned long long)frames[K_DIFF], (double)bytes[K_DIFF] / 1e6,
           (unsigned long long)frames[K_OTHER], (double)bytes[K_OTHER] / 1e6,
           (unsigned long long)nframes, (double)wire / 1e6);
    printf("views: %llu redundant joins (key already present), %llu leaves, %llu foreign keys, "
           "%llu out of order, %llu presence_state without the joiner itself; %llu complete at "
           "the end\n", (unsigned long long)redundant, (unsigned long long)leaves,
           (unsigned long long)foreign, (unsigned long long)disorder, (unsigned long long)no_self,
           (unsigned long long)complete);
    printf("CPU over the %.0f ms from t0 to convergence: server %.0f ms, clients (%d workers) "
           "%.0f ms (user %.0f ms), parent (heartbeats, sampling) %.0f ms; machine busy %.0f %% "
           "of %ld cores; the server waited %.0f ms for a CPU\n", window_ms, srv_ms, O.workers,
           client_ms, client_user_ms, parent_ms, busy_pct, sysconf(_SC_NPROCESSORS_ONLN),
           runq_ms);
    printf("join latency (write -> reply): p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
           "(write -> presence_state read): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", jr[0], jr[1],
           jr[2], js[0], js[1], js[2]);
    printf("heartbeat round trip every %d ms on an unjoined socket: idle p50 %.2f / p99 %.2f / "
           "max %.2f ms (%llu); during the storm p50 %.2f / p99 %.2f / max %.2f ms (%llu of "
           "%llu answered)\n", O.hb_ms, hbase[0], hbase[1], hbase[2],
           (unsigned long long)hb_answered[HB_BASE], hs[0], hs[1], hs[2],
           (unsigned long long)hb_answered[HB_STORM], (unsigned long long)hb_sent[HB_STORM]);
    for (int k = 0; k < 2; k++)
        printf("probe join into the full room (%s state): reply %.2f ms, presence_state of %u "
               "keys read %.2f ms, longest heartbeat meanwhile %.2f ms\n",
               k ? "cached" : "uncached", pr[k].reply_ms, pr[k].keys, pr[k].state_ms,
               pr[k].hb_max_ms);
    printf("chat message after the storm: delivered to %llu of %d clients in %.1f ms\n",
           (unsigned long long)after, O.conns, msg_ms);
    printf("server VmRSS: %ld kB before, %ld kB connected, %ld kB at the end, VmHWM %ld kB; "
           "closed by server %llu (last close code %d), bad frames %llu\n", rss0, rss_conn,
           rss_end, hwm, (unsigned long long)closed, close_code, (unsigned long long)bad);
    printf("RESULT mode=presence conns=%d rate=%d workers=%d joined=%llu failed=%llu "
           "closed=%llu close_code=%d bad=%llu ended=%s converged=%llu complete_end=%llu "
           "last_join_s=%.3f conv_s=%.3f conv_delay_ms=%.0f join_late_max_ms=%.2f "
           "state_frames=%llu state_bytes=%llu diff_frames=%llu diff_bytes=%llu "
           "other_frames=%llu other_bytes=%llu frames=%llu wire_bytes=%llu redundant=%llu "
           "leaves=%llu foreign=%llu disorder=%llu no_self=%llu window_ms=%.0f server_cpu_ms=%.0f "
           "client_cpu_ms=%.0f client_user_ms=%.0f parent_cpu_ms=%.0f machine_busy_pct=%.0f "
           "server_runq_ms=%.0f "
           "join_p50_ms=%.2f join_p99_ms=%.2f join_max_ms=%.2f state_p50_ms=%.2f "
           "state_p99_ms=%.2f state_max_ms=%.2f hb_base_p50_ms=%.2f hb_base_p99_ms=%.2f "
           "hb_base_max_ms=%.2f hb_p50_ms=%.2f hb_p99_ms=%.2f hb_max_ms=%.2f hb_sent=%llu "
           "hb_answered=%llu probe1_reply_ms=%.2f probe1_state_ms=%.2f probe1_keys=%u "
           "probe1_hb_max_ms=%.2f probe2_reply_ms=%.2f probe2_state_ms=%.2f probe2_keys=%u "
           "probe2_hb_max_ms=%.2f after_msg=%llu after_msg_ms=%.1f rss0_kb=%ld rss_conn_kb=%ld rss_end_kb=%ld hwm_kb=%ld\n",
           O.conns, O.rate, O.workers, (unsigned long long)joined, (unsigned long long)failed,
           (unsigned long long)closed, close_code, (unsigned long long)bad, ended,
           (unsigned long long)conv, (unsigned long long)complete, last_join_s, conv_s, delay_ms,
           (double)late_max / 1e6, (unsigned long long)frames[K_STATE],
           (unsigned long long)bytes[K_STATE], (unsigned long long)frames[K_DIFF],
           (unsigned long long)bytes[K_DIFF], (unsigned long long)frames[K_OTHER],
           (unsigned long long)bytes[K_OTHER], (unsigned long long)nframes,
           (unsigned long long)wire, (unsigned long long)redundant, (unsigned long long)leaves,
           (unsigned long long)foreign, (unsigned long long)disorder, (unsigned long long)no_self,
           window_ms, srv_ms,
           client_ms, client_user_ms, parent_ms, busy_pct, runq_ms, jr[0], jr[1], jr[2], js[0], js[1], js[2], hbase[0],
           hbase[1], hbase[2], hs[0], hs[1], hs[2], (unsigned long long)hb_sent[HB_STORM],
           (unsigned long long)hb_answered[HB_STORM], pr[0].reply_ms, pr[0].state_ms,
           pr[0].keys, pr[0].hb_max_ms, pr[1].reply_ms, pr[1].state_ms, pr[1].keys,
           pr[1].hb_max_ms, (unsigned long long)after, msg_ms, rss0, rss_conn, rss_end, hwm);
    return converged && complete == (uint64_t)O.conns && after == (uint64_t)O.conns && !failed &&
                   !closed && !bad
               ? 0
               : 1;
}

/* ---- crossnode ---------------------------------------------------------------- */

/* The tap: a plain Redis subscriber on the topic's channel, parley:t:<topic>,
 * in the parent. It reads the envelopes node A publishes, at the moment
 * Redis hands them to its subscribers (node B among them), which splits a
 * cross-node delivery into A -> Redis and Redis -> B -> client. */
static int tap_fd = -1, tap_subscribed;
static uint8_t *tap_buf;
static size_t tap_len, tap_cap;
static uint64_t *tap_rx; /* per message: when the tap read it (0: never) */
static uint64_t tap_msgs, tap_dups, tap_bad, tap_hist[HBUCKETS];
static uint64_t *sent_ns; /* per message: when it was written (0: not sent) */

/* One RESP line: p points at its type byte; returns the byte after its
 * "\r\n" (NULL: incomplete) and the number after the type byte. */
static const uint8_t *resp_line(const uint8_t *p, const uint8_t *e, long long *num) {
    const uint8_t *cr = memmem(p, (size_t)(e - p), "\r\n", 2);
    if (!cr)
        return NULL;
    *num = strtoll((const char *)p + 1, NULL, 10); /* stops at the '\r' */
    return cr + 2;
}

/* One RESP reply of the subscriber connection: an array of bulk strings and
 * integers (a push), or a single line. Up to 4 elements are returned in
 * el/ell (*nel counts all). Returns the bytes used, 0 if incomplete. */
static long resp_parse(const uint8_t *b, size_t n, const uint8_t **el, size_t *ell, int *nel) {
    const uint8_t *p = b, *e = b + n, *q;
    long long cnt, len;
    *nel = 0;
    if (!n)
        return 0;
    if (*p != '*') {
        if (!(q = resp_line(p, e, &len)))
            return 0;
        if (*p == '$' && len >= 0) {
            if ((size_t)(e - q) < (size_t)len + 2)
                return 0;
            q += len + 2;
        }
        return (long)(q - b);
    }
    if (!(q = resp_line(p, e, &cnt)))
        return 0;
    p = q;
    for (long long i = 0; i < cnt; i++) {
        if (p >= e || !(q = resp_line(p, e, &len)))
            return 0;
        const uint8_t *v = p + 1;
        size_t vl = (size_t)(q - 2 - v);
        if (*p == '$' && len >= 0) {
            if ((size_t)(e - q) < (size_t)len + 2)
                return 0;
            v = q, vl = (size_t)len;
            q += len + 2;
        }
        if (*nel < 4)
            el[*nel] = v, ell[*nel] = vl;
        ++*nel;
        p = q;
    }
    return (long)(p - b);
}

/* An envelope [origin, "b", topic, event, {"b": "<pub>:<seq>:<ns>:..."}] in
 * MessagePack: the payload is the map 0x81, key fixstr "b" (0xa1 'b'), then
 * a str header and the body. */
static void tap_message(const uint8_t *d, size_t n, uint64_t now) {
    const uint8_t *e = d + n, *p = memmem(d, n, "\x81\xa1" "b", 3);
    if (!p || (p += 3) >= e) {
        tap_bad++;
        return;
    }
    if ((*p & 0xe0) == 0xa0)
        p += 1;
    else if (*p == 0xd9)
        p += 2;
    else if (*p == 0xda)
        p += 3;
    else {
        tap_bad++;
        return;
    }
    int64_t pub = dec_field(&p, e), seq = dec_field(&p, e), sent = dec_field(&p, e);
    uint64_t k = (uint64_t)seq * (uint64_t)O.publishers + (uint64_t)pub;
    if (pub < 0 || seq < 0 || sent < 0 || pub >= O.publishers || k >= (uint64_t)O.messages) {
        tap_bad++;
        return;
    }
    if (tap_rx[k]) {
        tap_dups++;
        return;
    }
    tap_rx[k] = now;
    tap_msgs++;
    if (k >= (uint64_t)O.rate * (uint64_t)O.warmup_ms / 1000u)
        tap_hist[hbucket(now > (uint64_t)sent ? (now - (uint64_t)sent) / 1000 : 0)]++;
}

static void tap_readable(void) {
    for (;;) {
        if (tap_cap - tap_len < 65536) {
            tap_cap = tap_cap ? tap_cap * 2 : 262144;
            if (!(tap_buf = realloc(tap_buf, tap_cap)))
                parent_die("out of memory");
        }
        ssize_t r = read(tap_fd, tap_buf + tap_len, tap_cap - tap_len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            parent_die("the tap's Redis connection failed");
        }
        if (r == 0)
            parent_die("Redis closed the tap's connection");
        uint64_t now = now_ns();
        tap_len += (size_t)r;
        size_t off = 0;
        long used;
        const uint8_t *el[4];
        size_t ell[4];
        int nel;
        while ((used = resp_parse(tap_buf + off, tap_len - off, el, ell, &nel)) > 0) {
            off += (size_t)used;
            if (nel == 3 && ell[0] == 7 && !memcmp(el[0], "message", 7))
                tap_message(el[2], ell[2], now);
            else if (nel >= 1 && ell[0] == 9 && !memcmp(el[0], "subscribe", 9))
                tap_subscribed = 1;
        }
        memmove(tap_buf, tap_buf + off, tap_len - off);
        tap_len -= off;
    }
}

static void tap_open(void) {
    if ((tap_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        parent_die("socket failed");
    int one = 1;
    setsockopt(tap_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.redis_port)};
    inet_pton(AF_INET, O.host, &dst.sin_addr);
    if (connect(tap_fd, (struct sockaddr *)&dst, sizeof dst))
        parent_die("cannot connect the tap to Redis");
    char cmd[512];
    int tl = (int)strlen(O.topic);
    int n = snprintf(cmd, sizeof cmd, "*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\nparley:t:%s\r\n", tl + 9,
                     O.topic);
    if (write(tap_fd, cmd, (size_t)n) != n)
        parent_die("cannot write to the tap's Redis connection");
    fcntl(tap_fd, F_SETFL, fcntl(tap_fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tap_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tap_fd, &ev))
        parent_die("epoll_ctl failed");
    uint64_t deadline = now_ns() + 5000000000u;
    while (!tap_subscribed && now_ns() < deadline)
        parent_poll(10);
    if (!tap_subscribed)
        parent_die("the tap's SUBSCRIBE was not confirmed");
}

/* One publish: ["1","<ref>","<topic>","msg",{"b":"<p>:<seq>:<now_ns>:xxx"}],
 * the "b" string padded to exactly O.payload bytes. Returns the time written
 * into it, taken just before it is queued (conn_flush writes it at once). */
static uint64_t publish_x(conn_t *pub, int p, uint64_t seq) {
    static char *frame;
    static size_t cap;
    size_t need = (size_t)O.payload + strlen(O.topic) + 128;
    if (need > cap && !(frame = realloc(frame, cap = need)))
        die("out of memory");
    uint64_t ts = now_ns();
    int n = snprintf(frame, cap, "[\"1\",\"%llu\",\"%s\",\"msg\",{\"b\":\"", (unsigned long long)seq + 2,
                     O.topic);
    int b0 = n;
    n += snprintf(frame + n, cap - (size_t)n, "%d:%llu:%llu:", p, (unsigned long long)seq,
                  (unsigned long long)ts);
    if (n - b0 < O.payload) {
        memset(frame + n, 'x', (size_t)(O.payload - (n - b0)));
        n = b0 + O.payload;
    }
    memcpy(frame + n, "\"}]", 3);
    ws_queue(pub, 0x1, frame, (size_t)n + 3);
    return ts;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Quantile q of n sorted values, in ms. */
static double qv_ms(const int64_t *v, size_t n, double q) {
    if (!n)
        return 0;
    size_t i = (size_t)((double)n * q);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

/* A per-message series (ns): sorted in place; p50 / p99 / max in ms. */
typedef struct series {
    const char *name;
    int64_t *v;
    size_t n;
} series_t;

static double pct_tenth(const uint64_t *hist, double q) {
    return pct_ms(hist, hist_total(hist), q);
}

static int run_crossnode(void) {
    size_t M = (size_t)O.messages, P = (size_t)O.publishers;
    uint64_t warm = (uint64_t)O.rate * (uint64_t)O.warmup_ms / 1000u;
    size_t rx_bytes = (size_t)O.workers * RX_N * M * sizeof *msg_rx;
    if ((msg_rx = mmap(NULL, rx_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                       0)) == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    if (!(sent_ns = calloc(M, sizeof *sent_ns)) || !(tap_rx = calloc(M, sizeof *tap_rx)))
        die("out of memory");
    int total_subs = 2 * O.conns, nsub[2] = {0, 0};
    xn_per_node = O.conns;
    for (int i = 0; i < total_subs; i++)
        nsub[node_of(i)]++;

    long long cpuj0 = server_ticks(), cpuj0b = pid_ticks(O.server_pid_b);
    uint64_t tj0 = now_ns();
    O.conns = total_subs; /* start_workers and the join report count connections */
    start_workers();
    wait_all(offsetof(wstat_t, ready), O.timeout_s, "joined");
    printf("join phase: %llu joined, %llu failed of %d (%d on node A, %d on node B) in %.2f s",
           (unsigned long long)SUM(joined), (unsigned long long)SUM(failed), total_subs, nsub[0],
           nsub[1], (double)(now_ns() - tj0) / 1e9);
    if (cpuj0 >= 0)
        printf(", server CPU A %.0f ms", ticks_ms(server_ticks() - cpuj0));
    if (cpuj0b >= 0)
        printf(", B %.0f ms", ticks_ms(pid_ticks(O.server_pid_b) - cpuj0b));
    printf("\n");
    O.conns = total_subs / 2;
    if (SUM(joined) != (uint64_t)total_subs)
        parent_die("not every subscriber joined");

    static wstat_t pubst;
    ST = &pubst;
    conn_t pubs[MAXPUB];
    for (size_t p = 0; p < P; p++)
        parent_conn(&pubs[p], R_PUBLISHER, (int)p, C_JOINED, "a publisher could not join");
    if (O.redis_port)
        tap_open();
    /* Node B subscribes to the topic's channel at its first join; the pause
     * lets that SUBSCRIBE reach Redis (the warm-up would also cover it). */
    sleep_polling(O.settle_ms);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* wake-ups within 1 us of the schedule */

    command_all('S');
    wait_all(offsetof(wstat_t, started), 30, "started");
    uint64_t expected = (uint64_t)total_subs * M;
    sampling = 1;
    machine_t m0 = machine_ticks();
    long long rq0[3] = {server_runq_ns(), pid_runq_ns(O.server_pid_b), pid_runq_ns(O.redis_pid)};
    take_sample();
    uint64_t t0 = samples[0].t + 1000000u, pcpu0 = cpu_us_self();
    uint64_t last_change = t0, last_total = 0, timeout, now;
    size_t k = 0;
    static uint64_t hist_late[HBUCKETS];
    timeout = t0 + ((uint64_t)O.warmup_ms + 1000u * (uint64_t)O.duration_s) * 1000000u +
              (uint64_t)O.timeout_s * 1000000000u;
    const char *ended = "complete";
#define DUE(i) (t0 + (uint64_t)(i) * 1000000000u / (uint64_t)O.rate)
    for (;;) {
        now = now_ns();
        while (k < M && DUE(k) <= now) {
            size_t p = k % P;
            sent_ns[k] = publish_x(&pubs[p], (int)p, k / P);
            conn_flush(&pubs[p]);
            if (pubs[p].state == C_DEAD)
                parent_die("a publisher's connection closed");
            hist_late[hbucket((sent_ns[k] - DUE(k)) / 1000)]++;
            k++;
            last_change = now = now_ns();
        }
        uint64_t total = SUM(received);
        if (total != last_total)
            last_total = total, last_change = now;
        if (k == M && total >= expected)
            break;
        if (k == M && now - last_change > (uint64_t)O.quiet_ms * 1000000u) {
            ended = "quiet";
            break;
        }
        if (now > timeout) {
            ended = "timeout";
            break;
        }
        int64_t wait = SAMPLE_NS;
        if (k < M && (int64_t)(DUE(k) - now) < wait)
            wait = (int64_t)(DUE(k) - now);
        parent_poll_ns(wait);
    }
#undef DUE
    take_sample();
    long long rq1[3] = {server_runq_ns(), pid_runq_ns(O.server_pid_b), pid_runq_ns(O.redis_pid)};
    uint64_t pcpu = cpu_us_self() - pcpu0;
    machine_t m1 = machine_ticks();
    sampling = 0;
    /* Let the publishers drain their replies and echoes (not measured). */
    uint64_t drain_end = now_ns() + 2000000000u;
    while ((pub_acks < k || pub_echo < k * P) && now_ns() < drain_end)
        parent_poll(10);
    stop_workers();

    /* Sum up the workers. */
    static uint64_t hist_a[HBUCKETS], hist_b[HBUCKETS];
    uint64_t xrecv[2][MAXPUB] = {{0}}, xdup[2][MAXPUB] = {{0}}, xooo[2][MAXPUB] = {{0}};
    uint64_t t_last = 0, bench_us = pcpu;
    for (int w = 0; w < O.workers; w++) {
        wstat_t *x = &shared[w];
        uint64_t t = atomic_load(&x->last_rx_ns);
        if (t > t_last)
            t_last = t;
        bench_us += x->cpu_us;
        for (int i = 0; i < HBUCKETS; i++)
            hist_a[i] += x->hist[i], hist_b[i] += x->hist_x[i];
        for (int n = 0; n < 2; n++)
            for (size_t p = 0; p < P; p++)
                xrecv[n][p] += x->xrecv[n][p], xdup[n][p] += x->xdup[n][p],
                    xooo[n][p] += x->xooo[n][p];
    }
    uint64_t received = SUM(received), closed = SUM(closed), bad = SUM(bad);
    sample_t *s0 = &samples[0], *s1 = &samples[nsamples - 1];
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].t >= t_last) {
            s1 = &samples[i];
            break;
        }
    double window_ms = t_last > s0->t ? (double)(t_last - s0->t) / 1e6 : 0;
    double cpu_ms[3] = {ticks_ms(s1->ticks - s0->ticks), ticks_ms(s1->ticks_b - s0->ticks_b),
                        ticks_ms(s1->ticks_r - s0->ticks_r)};
    int have_cpu[3] = {O.server_pid != 0, O.server_pid_b != 0, O.redis_pid != 0};
    double runq_ms[3];
    for (int i = 0; i < 3; i++)
        runq_ms[i] = rq0[i] >= 0 && rq1[i] >= 0 ? (double)(rq1[i] - rq0[i]) / 1e6 : -1;
    double busy_pct = busy_between(m0, m1);
    double send_s = k > 1 ? (double)(sent_ns[k - 1] - sent_ns[0]) / 1e9 : 0;
    double send_rate = send_s > 0 ? (double)(k - 1) / send_s : 0;
    double deliv_rate = window_ms > 0 ? (double)received / (window_ms / 1e3) : 0;
    int close_code = 0;
    for (int w = 0; w < O.workers; w++)
        if (shared[w].close_code)
            close_code = shared[w].close_code;

    /* Per message: the first and last read on each node, over all workers. */
    static const char *sname[] = {"first A - send", "last A - send", "first B - send",
                                  "last B - send", "tap - send", "first B - tap",
                                  "first B - first A", "last B - last A"};
    enum { S_FA, S_LA, S_FB, S_LB, S_TAP, S_B_TAP, S_FB_FA, S_LB_LA, S_N };
    series_t ser[S_N];
    for (int i = 0; i < S_N; i++) {
        ser[i].name = sname[i];
        ser[i].n = 0;
        if (!(ser[i].v = malloc(M * sizeof *ser[i].v)))
            die("out of memory");
    }
    FILE *dump = O.dump ? fopen(O.dump, "w") : NULL;
    if (O.dump && !dump)
        fprintf(stderr, "fanout_bench: cannot write %s: %s\n", O.dump, strerror(errno));
    if (dump)
        fprintf(dump, "k,sent,first_a,last_a,first_b,last_b,tap\n");
    /* Per second of sending (measured part): the worst last read per node. */
    size_t nsec = (size_t)O.duration_s + 2;
    double *sec_a = calloc(nsec, sizeof *sec_a), *sec_b = calloc(nsec, sizeof *sec_b),
           *sec_t = calloc(nsec, sizeof *sec_t);
    uint64_t incomplete = 0;
    for (size_t i = 0; i < k; i++) {
        uint64_t rx[RX_N] = {0, 0, 0, 0};
        for (int w = 0; w < O.workers; w++) {
            const uint64_t *base = msg_rx + (size_t)w * RX_N * M;
            for (int j = 0; j < RX_N; j++) {
                uint64_t v = base[(size_t)j * M + i];
                if (!v)
                    continue;
                int first = j == RX_FIRST_A || j == RX_FIRST_B;
                if (!rx[j] || (first ? v < rx[j] : v > rx[j]))
                    rx[j] = v;
            }
        }
        if (dump)
            fprintf(dump, "%zu,%llu,%llu,%llu,%llu,%llu,%llu\n", i,
                    (unsigned long long)sent_ns[i], (unsigned long long)rx[0],
                    (unsigned long long)rx[1], (unsigned long long)rx[2],
                    (unsigned long long)rx[3], (unsigned long long)tap_rx[i]);
        if (i < warm)
            continue;
        if (!rx[RX_FIRST_A] || !rx[RX_FIRST_B]) {
            incomplete++;
            continue;
        }
        int64_t s = (int64_t)sent_ns[i];
        ser[S_FA].v[ser[S_FA].n++] = (int64_t)rx[RX_FIRST_A] - s;
        ser[S_LA].v[ser[S_LA].n++] = (int64_t)rx[RX_LAST_A] - s;
        ser[S_FB].v[ser[S_FB].n++] = (int64_t)rx[RX_FIRST_B] - s;
        ser[S_LB].v[ser[S_LB].n++] = (int64_t)rx[RX_LAST_B] - s;
        ser[S_FB_FA].v[ser[S_FB_FA].n++] = (int64_t)rx[RX_FIRST_B] - (int64_t)rx[RX_FIRST_A];
        ser[S_LB_LA].v[ser[S_LB_LA].n++] = (int64_t)rx[RX_LAST_B] - (int64_t)rx[RX_LAST_A];
        if (tap_rx[i]) {
            ser[S_TAP].v[ser[S_TAP].n++] = (int64_t)tap_rx[i] - s;
            ser[S_B_TAP].v[ser[S_B_TAP].n++] = (int64_t)rx[RX_FIRST_B] - (int64_t)tap_rx[i];
        }
        size_t sec = (size_t)((sent_ns[i] - sent_ns[warm < k ? warm : 0]) / 1000000000u);
        if (sec < nsec) {
            double la = (double)(rx[RX_LAST_A] - sent_ns[i]) / 1e6,
                   lb = (double)(rx[RX_LAST_B] - sent_ns[i]) / 1e6;
            if (la > sec_a[sec])
                sec_a[sec] = la;
            if (lb > sec_b[sec])
                sec_b[sec] = lb;
            if (tap_rx[i] && (double)(tap_rx[i] - sent_ns[i]) / 1e6 > sec_t[sec])
                sec_t[sec] = (double)(tap_rx[i] - sent_ns[i]) / 1e6;
        }
    }
    if (dump)
        fclose(dump);
    for (int i = 0; i < S_N; i++)
        qsort(ser[i].v, ser[i].n, sizeof *ser[i].v, cmp_i64);

    /* The report. */
    uint64_t na = hist_total(hist_a), nb = hist_total(hist_b);
    double a[5] = {pct_tenth(hist_a, 0.5), pct_tenth(hist_a, 0.9), pct_tenth(hist_a, 0.99),
                   pct_tenth(hist_a, 0.999), pct_tenth(hist_a, 1.0)};
    double b[5] = {pct_tenth(hist_b, 0.5), pct_tenth(hist_b, 0.9), pct_tenth(hist_b, 0.99),
                   pct_tenth(hist_b, 0.999), pct_tenth(hist_b, 1.0)};
    double t[5] = {pct_tenth(tap_hist, 0.5), pct_tenth(tap_hist, 0.9), pct_tenth(tap_hist, 0.99),
                   pct_tenth(tap_hist, 0.999), pct_tenth(tap_hist, 1.0)};
    double late_p99 = pct_tenth(hist_late, 0.99), late_max = pct_tenth(hist_late, 1.0);
    printf("sent %zu of %zu messages (%zu publisher(s) on node A, %d-byte bodies) at %.0f/s "
           "(target %d/s); schedule lateness p99 %.3f ms, max %.3f ms; ended: %s\n", k, M, P,
           O.payload, send_rate, O.rate, late_p99, late_max, ended);
    printf("deliveries: %llu of %llu expected to %d subscribers (%d per node), %.0f/s over "
           "%.0f ms from the first send to the last read; publishers' echoes %llu of %llu, acks "
           "%llu of %zu\n", (unsigned long long)received, (unsigned long long)expected,
           total_subs, O.conns, deliv_rate, window_ms, (unsigned long long)pub_echo,
           (unsigned long long)(k * P), (unsigned long long)pub_acks, k);
    printf("latency send -> read, the %llu messages after the %d ms warm-up (ms):\n",
           (unsigned long long)(k > warm ? k - warm : 0), O.warmup_ms);
    printf("  same-node  (A, %llu deliveries): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
           "max %.3f\n", (unsigned long long)na, a[0], a[1], a[2], a[3], a[4]);
    printf("  cross-node (B, %llu deliveries): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
           "max %.3f\n", (unsigned long long)nb, b[0], b[1], b[2], b[3], b[4]);
    if (O.redis_port)
        printf("  tap (Redis subscriber, %llu messages): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 "
               "%.3f  max %.3f\n", (unsigned long long)hist_total(tap_hist), t[0], t[1], t[2],
               t[3], t[4]);
    printf("  p99 cross-node - same-node: %+.3f ms\n", b[2] - a[2]);
    printf("per message (%zu measured with reads on both nodes, %llu without), ms: p50 / p90 / "
           "p99 / p99.9 / max\n", ser[S_FA].n, (unsigned long long)incomplete);
    for (int i = 0; i < S_N; i++) {
        if (!ser[i].n)
            continue;
        printf("  %-18s %8.3f %8.3f %8.3f %8.3f %8.3f\n", ser[i].name, qv_ms(ser[i].v, ser[i].n, .5),
               qv_ms(ser[i].v, ser[i].n, .9), qv_ms(ser[i].v, ser[i].n, .99),
               qv_ms(ser[i].v, ser[i].n, .999), qv_ms(ser[i].v, ser[i].n, 1.0));
    }
    printf("worst last read per second of sending (ms), A / B%s:", O.redis_port ? " / tap" : "");
    for (size_t i = 0; i < nsec && (sec_a[i] > 0 || sec_b[i] > 0); i++) {
        if (O.redis_port)
            printf(" %.1f/%.1f/%.1f", sec_a[i], sec_b[i], sec_t[i]);
        else
            printf(" %.1f/%.1f", sec_a[i], sec_b[i]);
    }
    printf("\n");
    for (size_t p = 0; p < P; p++) {
        uint64_t sent_p = (k + P - 1 - p) / P;
        for (int n = 0; n < 2; n++)
            printf("publisher %zu -> node %c: %llu of %llu delivered, %llu missing, %llu "
                   "duplicates, %llu out of order\n", p, n ? 'B' : 'A',
                   (unsigned long long)xrecv[n][p], (unsigned long long)(sent_p * (uint64_t)nsub[n]),
                   (unsigned long long)(sent_p * (uint64_t)nsub[n] - xrecv[n][p]),
                   (unsigned long long)xdup[n][p], (unsigned long long)xooo[n][p]);
    }
    if (O.redis_port)
        printf("tap: %llu of %zu messages, %llu duplicates, %llu unreadable\n",
               (unsigned long long)tap_msgs, k, (unsigned long long)tap_dups,
               (unsigned long long)tap_bad);
    printf("CPU over the %.0f ms window:", window_ms);
    static const char *who[3] = {"node A", "node B", "Redis"};
    for (int i = 0; i < 3; i++)
        if (have_cpu[i])
            printf(" %s %.0f ms (%.0f %% of a core, waited %.0f ms for a CPU);", who[i], cpu_ms[i],
                   window_ms > 0 ? 100 * cpu_ms[i] / window_ms : 0, runq_ms[i]);
    printf(" bench %.0f ms (%.0f %%); machine busy %.0f %% of %ld cores\n",
           (double)bench_us / 1000.0, window_ms > 0 ? (double)bench_us / 10.0 / window_ms : 0,
           busy_pct, sysconf(_SC_NPROCESSORS_ONLN));
    printf("closed by server %llu (last close code %d), bad frames %llu\n",
           (unsigned long long)closed, close_code, (unsigned long long)bad);

    printf("RESULT mode=crossnode conns_per_node=%d subs_a=%d subs_b=%d publishers=%zu rate=%d "
           "payload=%d duration_s=%d warmup_ms=%d messages=%zu sent=%zu measured=%llu "
           "ended=%s send_rate=%.0f late_p99_ms=%.3f late_max_ms=%.3f expected=%llu "
           "received=%llu window_ms=%.0f deliv_per_s=%.0f "
           "a_n=%llu a_p50=%.3f a_p90=%.3f a_p99=%.3f a_p999=%.3f a_max=%.3f "
           "b_n=%llu b_p50=%.3f b_p90=%.3f b_p99=%.3f b_p999=%.3f b_max=%.3f p99_diff=%.3f "
           "tap_n=%llu tap_p50=%.3f tap_p90=%.3f tap_p99=%.3f tap_p999=%.3f tap_max=%.3f "
           "a_cpu_ms=%.0f b_cpu_ms=%.0f r_cpu_ms=%.0f a_cpu_pct=%.0f b_cpu_pct=%.0f "
           "r_cpu_pct=%.0f a_runq_ms=%.0f b_runq_ms=%.0f r_runq_ms=%.0f bench_cpu_ms=%.0f "
           "bench_cpu_pct=%.0f machine_busy_pct=%.0f closed=%llu bad=%llu pub_echo=%llu "
           "pub_acks=%llu tap_msgs=%llu incomplete=%llu",
           O.conns, nsub[0], nsub[1], P, O.rate, O.payload, O.duration_s, O.warmup_ms, M, k,
           (unsigned long long)(k > warm ? k - warm : 0), ended, send_rate, late_p99, late_max,
           (unsigned long long)expected, (unsigned long long)received, window_ms, deliv_rate,
           (unsigned long long)na, a[0], a[1], a[2], a[3], a[4], (unsigned long long)nb, b[0],
           b[1], b[2], b[3], b[4], b[2] - a[2], (unsigned long long)hist_total(tap_hist), t[0],
           t[1], t[2], t[3], t[4], cpu_ms[0], cpu_ms[1], cpu_ms[2],
           window_ms > 0 ? 100 * cpu_ms[0] / window_ms : 0,
           window_ms > 0 ? 100 * cpu_ms[1] / window_ms : 0,
           window_ms > 0 ? 100 * cpu_ms[2] / window_ms : 0, runq_ms[0], runq_ms[1], runq_ms[2],
           (double)bench_us / 1000.0, window_ms > 0 ? (double)bench_us / 10.0 / window_ms : 0,
           busy_pct, (unsigned long long)closed, (unsigned long long)bad,
           (unsigned long long)pub_echo, (unsigned long long)pub_acks,
           (unsigned long long)tap_msgs, (unsigned long long)incomplete);
    static const char *sk[S_N] = {"fa", "la", "fb", "lb", "tap", "fb_tap", "fb_fa", "lb_la"};
    for (int i = 0; i < S_N; i++)
        printf(" m_%s_p50=%.3f m_%s_p99=%.3f m_%s_max=%.3f", sk[i], qv_ms(ser[i].v, ser[i].n, .5),
               sk[i], qv_ms(ser[i].v, ser[i].n, .99), sk[i], qv_ms(ser[i].v, ser[i].n, 1.0));
    uint64_t lost = 0, dups = 0, ooo = 0;
    for (size_t p = 0; p < P; p++) {
        uint64_t sent_p = (k + P - 1 - p) / P;
        for (int n = 0; n < 2; n++) {
            uint64_t exp_p = sent_p * (uint64_t)nsub[n];
            printf(" p%zu_%c_exp=%llu p%zu_%c_recv=%llu p%zu_%c_dup=%llu p%zu_%c_ooo=%llu", p,
                   n ? 'b' : 'a', (unsigned long long)exp_p, p, n ? 'b' : 'a',
                   (unsigned long long)xrecv[n][p], p, n ? 'b' : 'a',
                   (unsigned long long)xdup[n][p], p, n ? 'b' : 'a',
                   (unsigned long long)xooo[n][p]);
            lost += exp_p - xrecv[n][p], dups += xdup[n][p], ooo += xooo[n][p];
        }
    }
    printf(" lost=%llu dups=%llu ooo=%llu\n", (unsigned long long)lost, (unsigned long long)dups,
           (unsigned long long)ooo);
    return k == M && lost == 0 && dups == 0 && ooo == 0 && closed == 0 && bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    rng_state = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    bcast_prefix_len = (size_t)snprintf(bcast_prefix, sizeof bcast_prefix,
                                        "[null,null,\"%s\",\"msg\",{\"b\":\"", O.topic);
    state_prefix_len = (size_t)snprintf(state_prefix, sizeof state_prefix,
                                        "[null,null,\"%s\",\"presence_state\",", O.topic);
    diff_prefix_len = (size_t)snprintf(diff_prefix, sizeof diff_prefix,
                                       "[null,null,\"%s\",\"presence_diff\",", O.topic);
    presence = !strcmp(O.mode, "presence");
    crossnode = !strcmp(O.mode, "crossnode");
    worker_index = -1;
    if (O.server_pid)
        status_kb("VmRSS"); /* fail early on a wrong pid */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (crossnode)
        printf("fanout_bench crossnode: %d subscribers on each of node A (%s:%d) and node B "
               "(port %d), %d publisher(s) on A, %d messages/s for %d s after %d ms of warm-up, "
               "%d worker(s)\n", O.conns, O.host, O.port, O.port_b, O.publishers, O.rate,
               O.duration_s, O.warmup_ms, O.workers);
    else
        printf("fanout_bench %s: %d connections to %s:%d, %d worker(s)\n", O.mode, O.conns,
               O.host, O.port, O.workers);
    static wstat_t parent_stats; /* until the publisher's own slot is set */
    ST = &parent_stats;
    if (presence)
        return run_presence();
    if (crossnode)
        return run_crossnode();
    return !strcmp(O.mode, "idle") ? run_idle() : run_fanout();
}
