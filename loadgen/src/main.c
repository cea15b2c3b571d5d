/* parley-loadgen -- a load generator for Parley and any server that speaks
 * the Phoenix Channels protocol (V2 JSON or MessagePack) over WebSocket.
 *
 * The parent process parses the scenario, forks --workers worker processes
 * (each owns a share of the connections on its own epoll loop; see
 * worker.c), moves them through the phases (connect and join; run; stop)
 * through a shared control block, prints a progress line every second,
 * samples the servers' CPU and memory from /proc, and writes the summary,
 * the JSON report and the per-second CSV (report.c). */
#include "loadgen.h"
#include "report.h"
#include "sys.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

opts_t O = {
    .conns = 100, .publishers = 1, .rooms = 1, .rate = -1, .concurrency = 200, .payload = 100,
    .duration = 10, .warmup = 1, .hold = 5, .timeout = 30, .drain = 5, .heartbeat_s = 30, .poll_us = 250,
    .workers = 1, .source_ips = 1, .topic = "loadgen", .track = 1 << 20, .abuse_reconnect = 1,
};
ws_target_t targets[MAX_TARGETS];
shared_t *SH;
uint32_t *sent_by;
uint64_t *msg_times;
int npubs_total;
uint64_t nmessages;

static pid_t workers[MAX_WORKERS];
static int wake[MAX_WORKERS];
static pid_t abuser;   /* the --abuse process */
static int abuser_wake;
static volatile sig_atomic_t interrupted;

/* ---- geometry (the same in every process) --------------------------------- */

int total_conns(void) {
    return O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE ? O.conns + O.publishers : O.conns;
}

/* Fanout: publishers on the first target, subscribers spread over all of
 * them; otherwise connections round-robin over the targets. */
int conn_target(int index) {
    if (O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE)
        return index < O.publishers ? 0 : (index - O.publishers) % O.nurls;
    return index % O.nurls;
}

const char *scenario_topic(int index, char *buf, size_t len) {
    if (O.scenario == SC_ROOMS || O.scenario == SC_CONNECT)
        snprintf(buf, len, "%s:%d", O.topic, index % O.rooms);
    else
        snprintf(buf, len, "%s:%s", O.topic, O.scenario_name);
    return buf;
}

const char *conn_token(const char *who, char *buf, size_t len) {
    if (!O.tokens)
        return NULL;
    char sub[64];
    snprintf(sub, sizeof sub, "loadgen-%s", who);
    /* a day: longer than any run, shorter than forever */
    if (token_mint(buf, len, &O.token_key, sub, O.token_tenant, (long)time(NULL) + 86400) < 0) {
        fprintf(stderr, "parley-loadgen: cannot make a token (--token-key too long?)\n");
        exit(1);
    }
    return buf;
}

/* ---- options ----------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
"usage: parley-loadgen SCENARIO [options]\n"
"scenarios:\n"
"  connect    --conns N connections at --ramp per second, each joins one of --rooms\n"
"             topics; held --hold seconds; connect and join times, server memory\n"
"  rooms      --conns users in --rooms rooms, each sending --rate messages/s (open\n"
"             loop) for --warmup + --duration seconds; latency of every delivery\n"
"  fanout     --conns subscribers and --publishers publishers on one topic;\n"
"             --messages at --rate per second in all, or --burst; first- and\n"
"             last-receiver latency per message\n"
"  crossnode  fanout with publishers on the first --url and subscribers spread\n"
"             over all of them (two or more nodes of one cluster)\n"
"  presence   --conns users connect, then join one room at --rate joins/s; the time\n"
"             until every client's presence view holds every user\n"
"options:\n"
"  --url URL            ws://host:port/path (repeatable: several nodes)\n"
"                       (default ws://127.0.0.1:4000/socket/websocket)\n"
"  --serializer S       json (Phoenix V2) or msgpack\n"
"  --conns N            connections (fanout: subscribers) [100]\n"
"  --publishers N       fanout: publisher connections [1]\n"
"  --rooms N            rooms (connect, rooms) [1]\n"
"  --rate R             rooms: msg/s per user [1]; fanout: msg/s in all [4];\n"
"                       presence: joins/s [500]\n"
"  --ramp R             connections opened per second, all workers [0: no limit]\n"
"  --concurrency N      per worker: handshakes and joins in flight [200]\n"
"  --messages N         fanout: messages [rate x duration; burst: 200]\n"
"  --burst              fanout: send --messages back to back\n"
"  --payload BYTES      message body size [100]\n"
"  --duration S         measured seconds [10]   --warmup S  untimed seconds first [1]\n"
"  --hold S             connect: seconds to hold the connections [5]\n"
"  --timeout S          join phase limit, and per join [30]\n"
"  --drain S            after the last send, wait this long without progress [5]\n"
"  --heartbeat S        Phoenix heartbeat period per connection [30; 0: none]\n"
"  --poll-interval US   least time between two polls of a worker's sockets, in\n"
"                       microseconds; what is due before the next poll is sent\n"
"                       early [250; 0: poll whenever anything arrives]\n"
"  --workers N          worker processes [1]\n"
"  --source-ips N       spread source addresses over 127.0.0.1 .. +N-1 [1]\n"
"  --topic PREFIX       topic prefix [loadgen]\n"
"  --server-pid PID     a server process to measure (repeatable)\n"
"  --report FILE        write the JSON report\n"
"  --csv FILE           write one CSV row per second\n"
"  --quiet              no progress lines\n"
"  --abuse KIND         one more connection, abusing the server during the measured\n"
"                       window: flood (chat messages as fast as the socket takes\n"
"                       them), joinspam (phx_join likewise) or slowread (joins the\n"
"                       topics, up to 100, and never reads); see docs/loadgen.md\n"
"  --abuse-reconnect S  seconds before the abuser reconnects once the server closed\n"
"                       it [1; -1: never]\n"
"  --abuse-hold S       the abuser hangs up by itself S seconds after each upgrade\n"
"                       (then reconnects as above), so that its effect can be told\n"
"                       from the rest of the run [0: it never does]\n"
"  --abuse-priority P   idle: the abuser's process runs only on a core no other\n"
"                       process wants, as if on a machine of its own; normal: it\n"
"                       competes for the cores like the rest [idle]\n"
"  --token-key KEY      for a server run with --auth-keys: [kid:]secret, or @FILE\n"
"                       holding it; each connection passes a token (HS256) of its\n"
"                       own user, loadgen-N (the abuser: loadgen-abuser)\n"
"  --token-tenant T     the tokens' tenant claim [none]\n");
}

static double num_arg(const char *name, const char *v, double min) {
    char *end;
    double d = strtod(v, &end);
    if (*end || d < min || isnan(d)) {
        fprintf(stderr, "parley-loadgen: --%s wants a number >= %g, not '%s'\n", name, min, v);
        exit(2);
    }
    return d;
}

/* --token-key [kid:]secret, or @FILE holding that (its first line). */
static void token_key_arg(const char *v) {
    char line[640];
    if (v[0] == '@') {
        FILE *f = fopen(v + 1, "r");
        if (!f || !fgets(line, sizeof line, f)) {
            fprintf(stderr, "parley-loadgen: --token-key: cannot read %s\n", v + 1);
            exit(2);
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        v = line;
    }
    if (token_key_parse(&O.token_key, v)) {
        fprintf(stderr, "parley-loadgen: --token-key wants [kid:]secret (a secret of 1 to 512 "
                        "bytes, a kid of at most 63 plain characters)\n");
        exit(2);
    }
    O.tokens = 1;
}

static void parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"url", 1, 0, 'u'},       {"serializer", 1, 0, 's'}, {"conns", 1, 0, 'n'},
        {"publishers", 1, 0, 'P'}, {"rooms", 1, 0, 'r'},     {"rate", 1, 0, 'R'},
        {"ramp", 1, 0, 'a'},       {"concurrency", 1, 0, 'c'}, {"messages", 1, 0, 'm'},
        {"burst", 0, 0, 'b'},      {"payload", 1, 0, 'p'},   {"duration", 1, 0, 'd'},
        {"warmup", 1, 0, 'w'},     {"hold", 1, 0, 'H'},      {"timeout", 1, 0, 't'},
        {"drain", 1, 0, 'D'},      {"heartbeat", 1, 0, 'B'}, {"poll-interval", 1, 0, 'I'}, {"workers", 1, 0, 'W'},
        {"source-ips", 1, 0, 'S'}, {"topic", 1, 0, 'T'},     {"server-pid", 1, 0, 'x'},
        {"report", 1, 0, 'o'},     {"csv", 1, 0, 'C'},       {"quiet", 0, 0, 'q'},
        {"track", 1, 0, 'k'},      {"help", 0, 0, 'h'},      {"abuse", 1, 0, 'A'},
        {"abuse-reconnect", 1, 0, 'Z'}, {"token-key", 1, 0, 'K'}, {"token-tenant", 1, 0, 'N'},
        {"abuse-priority", 1, 0, 'Y'}, {"abuse-hold", 1, 0, 'L'},
        {0, 0, 0, 0}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        exit(argc < 2 ? 2 : 0);
    }
    static const char *names[] = {"connect", "rooms", "fanout", "presence", "crossnode"};
    O.scenario_name = argv[1];
    int found = 0;
    for (int i = 0; i < 5; i++)
        if (!strcmp(argv[1], names[i])) {
            O.scenario = (enum scenario)i;
            found = 1;
        }
    if (!found) {
        fprintf(stderr, "parley-loadgen: unknown scenario '%s'\n", argv[1]);
        usage(stderr);
        exit(2);
    }
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            if (O.nurls == MAX_TARGETS) {
                fprintf(stderr, "parley-loadgen: at most %d --url\n", MAX_TARGETS);
                exit(2);
            }
            O.urls[O.nurls++] = optarg;
            break;
        case 's':
            if (strcmp(optarg, "json") && strcmp(optarg, "msgpack")) {
                fprintf(stderr, "parley-loadgen: --serializer is json or msgpack\n");
                exit(2);
            }
            O.msgpack = !strcmp(optarg, "msgpack");
            break;
        case 'n': O.conns = (int)num_arg("conns", optarg, 1); break;
        case 'P': O.publishers = (int)num_arg("publishers", optarg, 1); break;
        case 'r': O.rooms = (int)num_arg("rooms", optarg, 1); break;
        case 'R': O.rate = num_arg("rate", optarg, 0); break;
        case 'a': O.ramp = num_arg("ramp", optarg, 0); break;
        case 'c': O.concurrency = (int)num_arg("concurrency", optarg, 1); break;
        case 'm': O.messages = (int)num_arg("messages", optarg, 1); break;
        case 'b': O.burst = 1; break;
        case 'p': O.payload = (int)num_arg("payload", optarg, 0); break;
        case 'd': O.duration = num_arg("duration", optarg, 0); break;
        case 'w': O.warmup = num_arg("warmup", optarg, 0); break;
        case 'H': O.hold = num_arg("hold", optarg, 0); break;
        case 't': O.timeout = num_arg("timeout", optarg, 0.1); break;
        case 'D': O.drain = num_arg("drain", optarg, 0.1); break;
        case 'B': O.heartbeat_s = (int)num_arg("heartbeat", optarg, 0); break;
        case 'I': O.poll_us = (int)num_arg("poll-interval", optarg, 0); break;
        case 'W': O.workers = (int)num_arg("workers", optarg, 1); break;
        case 'S': O.source_ips = (int)num_arg("source-ips", optarg, 1); break;
        case 'T': O.topic = optarg; break;
        case 'x':
            if (O.nserver_pids < MAX_SERVER_PIDS)
                O.server_pids[O.nserver_pids++] = (int)num_arg("server-pid", optarg, 1);
            break;
        case 'o': O.report = optarg; break;
        case 'C': O.csv = optarg; break;
        case 'q': O.quiet = 1; break;
        case 'k': O.track = (int)num_arg("track", optarg, 0); break;
        case 'A': {
            int k = 1;
            while (k < 4 && strcmp(optarg, abuse_names[k]))
                k++;
            if (k == 4) {
                fprintf(stderr, "parley-loadgen: --abuse is flood, slowread or joinspam\n");
                exit(2);
            }
            O.abuse = k;
            break;
        }
        case 'Z': O.abuse_reconnect = num_arg("abuse-reconnect", optarg, -1); break;
        case 'L': O.abuse_hold = num_arg("abuse-hold", optarg, 0); break;
        case 'Y':
            if (strcmp(optarg, "idle") && strcmp(optarg, "normal")) {
                fprintf(stderr, "parley-loadgen: --abuse-priority is idle or normal\n");
                exit(2);
            }
            O.abuse_normal = !strcmp(optarg, "normal");
            break;
        case 'K': token_key_arg(optarg); break;
        case 'N': O.token_tenant = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parley-loadgen: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (!O.nurls)
        O.urls[O.nurls++] = "ws://127.0.0.1:4000/socket/websocket";
    if (O.workers > MAX_WORKERS)
        O.workers = MAX_WORKERS;
    if (O.source_ips > 1 << 24)
        O.source_ips = 1 << 24;
    if (O.scenario == SC_CROSSNODE && O.nurls < 2) {
        fprintf(stderr, "parley-loadgen: crossnode needs two --url or more (nodes of one cluster)\n");
        exit(2);
    }
    if (O.rate < 0)
        O.rate = O.scenario == SC_ROOMS ? 1 : O.scenario == SC_PRESENCE ? 500 : 4;
    if (O.rooms > O.conns)
        O.rooms = O.conns;
    const char *q = O.msgpack ? "vsn=2.0.0&serializer=msgpack" : "vsn=2.0.0";
    for (int i = 0; i < O.nurls; i++)
        if (ws_target_parse(&targets[i], O.urls[i], q)) {
            fprintf(stderr, "parley-loadgen: cannot use URL '%s' (want ws://IPv4:port/path)\n",
                    O.urls[i]);
            exit(2);
        }
    if (O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE) {
        npubs_total = O.publishers;
        nmessages = O.messages ? (uint64_t)O.messages
                    : O.burst  ? 200
                               : (uint64_t)ceil(O.rate * (O.warmup + O.duration));
    } else if (O.scenario == SC_ROOMS) {
        npubs_total = O.conns;
    }
}

/* ---- the parent -------------------------------------------------------------- */

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void kill_workers(void) {
    for (int w = 0; w < O.workers; w++)
        if (workers[w] > 0)
            kill(workers[w], SIGKILL);
    if (abuser > 0)
        kill(abuser, SIGKILL);
}

static void wake_all(void) {
    uint64_t one = 1;
    for (int w = 0; w < O.workers; w++)
        if (write(wake[w], &one, sizeof one) < 0 && errno != EAGAIN)
            perror("eventfd");
    if (abuser > 0 && write(abuser_wake, &one, sizeof one) < 0 && errno != EAGAIN)
        perror("eventfd");
}

#define SUM(field)                                                                                 \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (int w_ = 0; w_ < O.workers; w_++)                                                     \
            s_ += __atomic_load_n(&SH->w[w_].field, __ATOMIC_RELAXED);                             \
        s_;                                                                                        \
    })
#define MAX(field)                                                                                 \
    ({                                                                                             \
        uint64_t m_ = 0;                                                                           \
        for (int w_ = 0; w_ < O.workers; w_++) {                                                   \
            uint64_t v_ = __atomic_load_n(&SH->w[w_].field, __ATOMIC_RELAXED);                     \
            if (v_ > m_)                                                                           \
                m_ = v_;                                                                           \
        }                                                                                          \
        m_;                                                                                        \
    })

static uint64_t errors_total(void) {
    uint64_t n = 0;
    for (int e = 0; e < E_N; e++)
        n += SUM(errors[e]);
    return n;
}

/* The workers' CPU is read from /proc by the parent (exact, and costs the
 * workers nothing); the parent's own polling is counted too. */
static uint64_t loadgen_cpu_ns(void) {
    uint64_t s = self_cpu_ns();
    for (int w = 0; w < O.workers; w++) {
        int64_t c = workers[w] > 0 ? proc_cpu_ns(workers[w]) : -1;
        s += c > 0 ? (uint64_t)c : SH->w[w].cpu_ns;
    }
    return s;
}

static int64_t servers_cpu_ns(void) {
    int64_t s = 0;
    for (int i = 0; i < O.nserver_pids; i++) {
        int64_t c = proc_cpu_ns(O.server_pids[i]);
        if (c < 0)
            return -1;
        s += c;
    }
    return s;
}

static long servers_rss_kb(void) {
    long s = 0;
    for (int i = 0; i < O.nserver_pids; i++)
        s += proc_status_kb(O.server_pids[i], "VmRSS");
    return s;
}

/* Progress: one line a second on stderr, one CSV row. */
typedef struct progress {
    uint64_t t_start, last_t, last_sent, last_recv, last_lg_cpu;
    int64_t last_srv_cpu;
    hist_t last_h, cur_h, diff_h;
    FILE *csv;
} progress_t;

static progress_t P;

static void merged_latency(hist_t *h) {
    hist_reset(h);
    for (int w = 0; w < O.workers; w++)
        for (int t = 0; t < O.nurls; t++)
            hist_add(h, &SH->w[w].latency[t]);
}

/* Once a second, and once more at the end (force) for the last part. */
static void progress_at(const char *phase, int force) {
    uint64_t now = now_ns();
    if (now - P.last_t < 1000000000ull && !(force && now > P.last_t))
        return;
    double dt = (double)(now - P.last_t) / 1e9;
    uint64_t sent = SUM(sent), recv = SUM(unique), lg = loadgen_cpu_ns();
    int64_t srv = servers_cpu_ns();
    merged_latency(&P.cur_h);
    hist_diff(&P.diff_h, &P.cur_h, &P.last_h);
    hist_summary_t s = hist_summarize(&P.diff_h);
    double srv_pct = srv >= 0 && P.last_srv_cpu >= 0 ? (double)(srv - P.last_srv_cpu) / 1e7 / dt : -1;
    double lg_pct = (double)(lg - P.last_lg_cpu) / 1e7 / dt;
    long rss = O.nserver_pids ? servers_rss_kb() : -1;
    double t = (double)(now - P.t_start) / 1e9;
    if (!O.quiet) {
        fprintf(stderr,
                "[%6.1fs] %-7s open %llu joined %llu | sent %.0f/s recv %.0f/s | p50 %.2f p99 %.2f "
                "max %.2f ms | err %llu",
                t, phase, (unsigned long long)SUM(open_now), (unsigned long long)SUM(joined),
                (double)(sent - P.last_sent) / dt, (double)(recv - P.last_recv) / dt, s.p50, s.p99,
                s.max, (unsigned long long)errors_total());
        if (O.scenario == SC_PRESENCE)
            fprintf(stderr, " | views complete %llu", (unsigned long long)SUM(converged));
        if (srv_pct >= 0)
            fprintf(stderr, " | server cpu %.0f%% rss %.1f MB", srv_pct, (double)rss / 1024.0);
        fprintf(stderr, " | loadgen cpu %.0f%%\n", lg_pct);
    }
    if (P.csv)
        fprintf(P.csv, "%.3f,%s,%llu,%llu,%llu,%llu,%.1f,%.1f,%.3f,%.3f,%.3f,%.3f,%llu,%.1f,%ld,%.1f\n", t,
                phase, (unsigned long long)SUM(open_now), (unsigned long long)SUM(joined),
                (unsigned long long)sent, (unsigned long long)recv, (double)(sent - P.last_sent) / dt,
                (double)(recv - P.last_recv) / dt, s.p50, s.p90, s.p99, s.max,
                (unsigned long long)errors_total(), srv_pct, rss, lg_pct);
    P.last_t = now;
    P.last_sent = sent;
    P.last_recv = recv;
    P.last_lg_cpu = lg;
    P.last_srv_cpu = srv;
    P.last_h = P.cur_h;
}

static void progress(const char *phase) {
    progress_at(phase, 0);
}

/* Sleeps up to ms, printing progress; returns early when a worker died. */
static void tick(const char *phase, int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    progress(phase);
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
        for (int w = 0; w < O.workers; w++)
            if (workers[w] == pid)
                workers[w] = 0;
        if (abuser == pid)
            abuser = 0;
        fprintf(stderr, "parley-loadgen: a worker process ended early (status %d)\n", status);
        kill_workers();
        exit(1);
    }
    if (interrupted) {
        fprintf(stderr, "parley-loadgen: interrupted\n");
        kill_workers();
        exit(130);
    }
}

/* Forks a child that runs worker w (w < 0: the abuser) woken through
 * *wake_fd; returns its pid. */
static pid_t start_child(int w, int *wake_fd) {
    *wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (*wake_fd < 0) {
        perror("eventfd");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        kill_workers();
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(1);
        signal(SIGINT, SIG_IGN);
        if (w < 0)
            abuser_main(*wake_fd);
        SH->w[w].pid = (uint64_t)getpid();
        worker_main(w, *wake_fd);
        _exit(0);
    }
    return pid;
}

static void start_workers(void) {
    fflush(NULL); /* or each child would write the parent's buffered output again */
    for (int w = 0; w < O.workers; w++)
        workers[w] = start_child(w, &wake[w]);
    if (O.abuse)
        abuser = start_child(-1, &abuser_wake);
}

static void *shared_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    long per_worker = (long)total_conns() / O.workers + 64;
    if ((long)rl.rlim_cur < per_worker)
        fprintf(stderr,
                "parley-loadgen: warning: %ld connections per worker but a descriptor limit of "
                "%ld; use more --workers\n",
                per_worker - 64, (long)rl.rlim_cur);
}

/* After the run: the first- and last-receiver latency of each timed message
 * (timed[k] set), from the fastest and slowest delivery over all workers
 * (they record latency + 1, 0 meaning none). */
static void first_last(results_t *r, const uint8_t *timed) {
    for (uint64_t k = 0; k < nmessages && k < (uint64_t)O.track; k++) {
        if (!timed[k])
            continue;
        uint64_t f = 0, l = 0;
        for (int t = 0; t < O.nurls; t++) {
            uint64_t ft = 0, lt = 0;
            for (int w = 0; w < O.workers; w++) {
                const uint64_t *m = msg_times + (((size_t)w * (size_t)O.nurls + (size_t)t) * nmessages + k) * 2;
                if (m[0] && (!ft || m[0] < ft))
                    ft = m[0];
                if (m[1] > lt)
                    lt = m[1];
            }
            if (!ft)
                continue;
            hist_record(&r->first_t[t], ft - 1);
            hist_record(&r->last_t[t], lt - 1);
            if (!f || ft < f)
                f = ft;
            if (lt > l)
                l = lt;
        }
        if (f) {
            hist_record(&r->first, f - 1);
            hist_record(&r->last, l - 1);
            r->fl_messages++;
        }
    }
    r->have_fl = 1;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    static results_t R;
    machine_info(&R.machine);
    time_t wall = time(NULL);
    strftime(R.date, sizeof R.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&wall));
    size_t cl = 0;
    for (int i = 0; i < argc && cl < sizeof R.command - 1; i++)
        cl += (size_t)snprintf(R.command + cl, sizeof R.command - cl, "%s%s", i ? " " : "", argv[i]);
    raise_nofile();

    SH = shared_alloc(sizeof *SH);
    sent_by = shared_alloc((size_t)(npubs_total ? npubs_total : 1) * sizeof *sent_by);
    int track_fl = (O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE) && O.track > 0;
    if (track_fl)
        msg_times = shared_alloc((size_t)O.workers * (size_t)O.nurls * nmessages * 2 * sizeof(uint64_t));
    if (O.csv && !(P.csv = fopen(O.csv, "w"))) {
        fprintf(stderr, "parley-loadgen: cannot write %s: %s\n", O.csv, strerror(errno));
        return 2;
    }
    if (P.csv)
        fprintf(P.csv, "t_s,phase,open,joined,sent,received,sent_per_s,received_per_s,p50_ms,p90_ms,"
                       "p99_ms,max_ms,errors,server_cpu_pct,server_rss_kb,loadgen_cpu_pct\n");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    R.nservers = O.nserver_pids;
    for (int i = 0; i < R.nservers; i++) {
        server_stat_t *s = &R.servers[i];
        s->pid = O.server_pids[i];
        s->cpu_start = proc_cpu_ns(s->pid);
        s->rss_start_kb = proc_status_kb(s->pid, "VmRSS");
        if (s->cpu_start < 0) {
            fprintf(stderr, "parley-loadgen: no process %d (--server-pid)\n", s->pid);
            return 2;
        }
    }

    /* Phase 1: connect (and join, except for presence). */
    uint64_t t_start = now_ns();
    P.t_start = P.last_t = t_start;
    P.last_srv_cpu = servers_cpu_ns();
    int64_t srv_c0 = P.last_srv_cpu;
    uint64_t lg_c0 = self_cpu_ns();
    start_workers();
    double limit = O.timeout + (O.ramp > 0 ? (double)total_conns() / O.ramp : 0);
    while (SUM(ready) < (uint64_t)O.workers) {
        tick("connect", 20);
        if ((double)(now_ns() - t_start) / 1e9 > limit + 5) {
            fprintf(stderr, "parley-loadgen: connect phase did not finish in %.0f s\n", limit + 5);
            break;
        }
    }
    uint64_t t_joined = O.scenario == SC_PRESENCE ? now_ns() : MAX(last_join_ns);
    if (!t_joined)
        t_joined = now_ns();
    R.connect_s = (double)(t_joined - t_start) / 1e9;
    int64_t srv_c1 = servers_cpu_ns();
    uint64_t lg_c1 = loadgen_cpu_ns();
    for (int i = 0; i < R.nservers; i++)
        R.servers[i].rss_joined_kb = proc_status_kb(R.servers[i].pid, "VmRSS");

    /* Phase 2: run. */
    uint64_t t0 = now_ns() + 200000000ull; /* every worker is past its last tick by then */
    SH->ctl.t0 = t0;
    SH->ctl.t_measure = t0 + (O.scenario == SC_ROOMS || ((O.scenario == SC_FANOUT || O.scenario == SC_CROSSNODE) && !O.burst)
                                  ? (uint64_t)(O.warmup * 1e9)
                                  : 0);
    __atomic_store_n(&SH->ctl.phase, PH_RUN, __ATOMIC_RELEASE);
    wake_all();
    /* CPU is sampled just before the measured window opens (a burst may be
     * over within a millisecond of t0); the window itself starts at t0 or
     * after the warm-up, exactly. */
    while (now_ns() + 3000000 < SH->ctl.t_measure)
        tick(now_ns() < t0 ? "start" : "warmup", 1);
    int64_t srv_w0 = servers_cpu_ns();
    uint64_t lg_w0 = loadgen_cpu_ns(), t_w0 = SH->ctl.t_measure;
    for (int i = 0; i < R.nservers; i++)
        R.servers[i].cpu_w0 = proc_cpu_ns(R.servers[i].pid);
    uint64_t t_w1 = 0;
    if (O.scenario == SC_CONNECT) {
        while (now_ns() < t_w0 + (uint64_t)(O.hold * 1e9))
            tick("hold", 20);
        t_w1 = now_ns();
    } else {
        /* until everything sent arrived, or nothing more arrives for --drain s */
        uint64_t last_change = now_ns(), last_seen = 0;
        for (;;) {
            tick(SUM(sent_done) < (uint64_t)O.workers ? "run" : "drain", 2);
            uint64_t now = now_ns();
            uint64_t seen = O.scenario == SC_PRESENCE ? SUM(converged) + SUM(presence_frames) : SUM(received);
            if (seen != last_seen) {
                last_seen = seen;
                last_change = now;
            }
            if (SUM(sent_done) < (uint64_t)O.workers) {
                last_change = now;
                continue;
            }
            if (O.scenario == SC_PRESENCE ? SUM(converged) >= SUM(upgraded)
                                          : SUM(unique) >= SUM(expected))
                break;
            if ((double)(now - last_change) / 1e9 > O.drain)
                break;
        }
        t_w1 = O.scenario == SC_PRESENCE ? MAX(last_converged_ns) : MAX(last_rx_ns);
        if (!t_w1 || t_w1 < t_w0)
            t_w1 = now_ns();
    }
    int64_t srv_w1 = servers_cpu_ns();
    uint64_t lg_w1 = loadgen_cpu_ns();
    for (int i = 0; i < R.nservers; i++) {
        R.servers[i].cpu_w1 = proc_cpu_ns(R.servers[i].pid);
        R.servers[i].rss_end_kb = proc_status_kb(R.servers[i].pid, "VmRSS");
        R.servers[i].hwm_kb = proc_status_kb(R.servers[i].pid, "VmHWM");
    }
    progress_at("end", 1);

    /* Phase 3: stop; the workers count what never came. */
    __atomic_store_n(&SH->ctl.phase, PH_STOP, __ATOMIC_RELEASE);
    wake_all();
    for (int w = 0; w < O.workers; w++) {
        int status;
        if (workers[w] > 0 && waitpid(workers[w], &status, 0) == workers[w] &&
            (!WIFEXITED(status) || WEXITSTATUS(status))) {
            fprintf(stderr, "parley-loadgen: worker %d failed (status %d)\n", w, status);
            return 1;
        }
        workers[w] = 0;
    }
    if (abuser > 0) {
        int status;
        if (waitpid(abuser, &status, 0) == abuser && (!WIFEXITED(status) || WEXITSTATUS(status))) {
            fprintf(stderr, "parley-loadgen: the abuser process failed (status %d)\n", status);
            return 1;
        }
        abuser = 0;
        R.abuse = SH->abuse;
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    R.loadgen_cpu_total_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6 +
                            (double)self_cpu_ns() / 1e9;

    /* Results. */
    wslot_t *t = &R.t;
    for (int w = 0; w < O.workers; w++) {
        const wslot_t *s = &SH->w[w];
        const uint64_t *a = (const uint64_t *)s;
        uint64_t *b = (uint64_t *)t;
        size_t words = offsetof(wslot_t, connect) / sizeof(uint64_t);
        for (size_t i = 0; i < words; i++)
            b[i] += a[i];
        hist_add(&t->connect, &s->connect);
        hist_add(&t->join, &s->join);
        hist_add(&t->send_lag, &s->send_lag);
        hist_add(&t->transit, &s->transit);
        hist_add(&t->transit_during, &s->transit_during);
        hist_add(&t->transit_apart, &s->transit_apart);
        for (int k = 0; k < O.nurls; k++)
            hist_add(&t->latency[k], &s->latency[k]);
    }
    t->last_converged_ns = MAX(last_converged_ns);
    t->last_join_ns = MAX(last_join_ns);
    t->last_send_ns = MAX(last_send_ns);
    merged_latency(&R.latency);
    if (track_fl) {
        /* message k is timed if it was sent and due after the warm-up, as the
         * publishers computed it */
        uint8_t *timed = calloc(nmessages ? nmessages : 1, 1);
        for (uint64_t k = 0; k < nmessages && timed; k++) {
            uint64_t seq = k / (uint64_t)O.publishers, p = k % (uint64_t)O.publishers;
            uint64_t d = O.burst || O.rate <= 0 ? t0 : t0 + (uint64_t)((double)k * 1e9 / O.rate);
            timed[k] = seq < sent_by[p] && d >= SH->ctl.t_measure;
        }
        if (timed)
            first_last(&R, timed);
        free(timed);
    }
    /* The window and what is counted in it. */
    switch (O.scenario) {
    case SC_CONNECT:
        R.unit = "connection";
        R.units = (double)t->joined;
        R.window_s = R.connect_s;
        for (int i = 0; i < R.nservers; i++) {
            R.servers[i].cpu_w0 = R.servers[i].cpu_start;
            R.servers[i].cpu_w1 = R.servers[i].cpu_start + (srv_c1 - srv_c0) * (R.nservers == 1);
        }
        R.loadgen_cpu_s = (double)(lg_c1 - lg_c0) / 1e9;
        break;
    case SC_PRESENCE:
        R.unit = "join";
        R.units = (double)t->sent;
        R.window_s = t_w1 > t0 ? (double)(t_w1 - t0) / 1e9 : 0;
        R.presence_last_join_ms = t->last_send_ns > t0 ? (double)(t->last_send_ns - t0) / 1e6 : 0;
        R.presence_converged_ms = t->last_converged_ns > t0 ? (double)(t->last_converged_ns - t0) / 1e6 : 0;
        break;
    default:
        R.unit = "delivery";
        R.units = (double)R.latency.count;
        R.window_s = t_w1 > t_w0 ? (double)(t_w1 - t_w0) / 1e9 : 0; /* nothing timed: no window */
        break;
    }
    if (O.scenario != SC_CONNECT) {
        R.loadgen_cpu_s = (double)(lg_w1 - lg_w0) / 1e9;
        (void)srv_w0;
        (void)srv_w1;
    }
    /* Verdict. */
    uint64_t want = (uint64_t)total_conns();
    if (O.scenario == SC_PRESENCE ? t->upgraded < want || t->joined < want : t->joined < want)
        snprintf(R.verdict, sizeof R.verdict, "FAIL: %llu of %llu connections joined",
                 (unsigned long long)t->joined, (unsigned long long)want);
    else if (t->lost || t->dups)
        snprintf(R.verdict, sizeof R.verdict, "FAIL: %llu messages lost, %llu duplicated",
                 (unsigned long long)t->lost, (unsigned long long)t->dups);
    else if (O.scenario == SC_PRESENCE && t->converged < want)
        snprintf(R.verdict, sizeof R.verdict, "FAIL: %llu of %llu presence views complete",
                 (unsigned long long)t->converged, (unsigned long long)want);
    else if (errors_total())
        snprintf(R.verdict, sizeof R.verdict, "FAIL: %llu errors", (unsigned long long)errors_total());
    else {
        R.ok = 1;
        snprintf(R.verdict, sizeof R.verdict, "ok");
    }
    report_summary(stdout, &R);
    if (O.report && report_json(O.report, &R)) {
        fprintf(stderr, "parley-loadgen: cannot write %s\n", O.report);
        return 2;
    }
    if (P.csv)
        fclose(P.csv);
    return R.ok ? 0 : 1;
}
