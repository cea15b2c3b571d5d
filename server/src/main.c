/* main.c -- the parley server: configuration, the libev loop with
 * libwebsockets on it, timers, signals, and an orderly stop.
 *
 * One process is one node with one thread. lws runs on a libev loop we own
 * (a "foreign loop"), so the loop's backend is epoll and a wakeup costs the
 * same however many sockets sit idle. */
#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "config.h"
#include "gate.h"
#include "head.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "namespaces.h"
#include "presence.h"
#include "session.h"
#include "tls.h"
#include "transport.h"

static struct lws_context *context;
static ev_timer sweep_timer, stop_timer;
static ev_prepare flush_watcher;
static ev_check loop_check; /* marks where an iteration starts */
static ev_signal sigterm_watcher, sigint_watcher;
static double stop_deadline;

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
    session_sweep_idle(ev_now(loop));
    session_sweep_closing(ev_now(loop));
    session_sweep_expired(ev_time());
    gate_sweep_handshakes();
}

/* Writing queued frames is deferred a little so that a burst of broadcasts
 * leaves each socket in as few writes as possible (the kernel's cost is per
 * write, not per frame):
 *  - while input is still arriving: lws reads at most --rx-buffer bytes from
 *    a socket per callback, so a burst from one client takes many loop
 *    iterations to read. When frames are queued, an idle watcher is started;
 *    libev then polls without blocking and runs it only in an iteration with
 *    no I/O left to handle, and that is when we write; or FLUSH_MAX_DEFER
 *    seconds after the first frame was queued, so a busy server still
 *    delivers promptly;
 *  - when the loop is saturated (it never began a wait with nothing to write
 *    since the last flush), a flush that took D seconds is followed by a pause of
 *    D/2 (at most FLUSH_MAX_WAIT) before the next: reading keeps at least a
 *    third of the loop's time, and frames that arrive meanwhile share
 *    writes, so an overloaded server spends less per delivery. A loop with
 *    time to spare writes at once: pausing would add latency and save
 *    nothing. (A pause of D would be neutral: under a steady load the
 *    flushes would grow to FLUSH_MAX_WAIT and stay there, adding up to
 *    100 ms to every delivery of a server only half busy with writing; with
 *    D/2 they shrink back unless writing needs two thirds of the loop.)
 * A message to a quiet server is written in the next loop iteration (libev
 * polls without blocking while the idle watcher is active). */
#define FLUSH_MAX_DEFER 0.005
#define FLUSH_MAX_WAIT 0.05
#define FLUSH_MIN_WAIT 0.001

static ev_idle flush_idle;
static ev_timer flush_timer;
static double flush_first_queued; /* 0: nothing deferred yet */
static double flush_not_before;
static int idle_since_flush; /* the loop began a wait with nothing to write */

static void flush_now(struct ev_loop *loop) {
    ev_idle_stop(loop, &flush_idle);
    ev_timer_stop(loop, &flush_timer);
    flush_first_queued = 0;
    double t0 = ev_time();
    session_flush();
    ev_now_update(loop); /* timers are relative to the loop's cached time */
    double t1 = ev_now(loop);
    double pause = (t1 - t0) / 2;
    flush_not_before = idle_since_flush ? 0 : t1 + (pause < FLUSH_MAX_WAIT ? pause : FLUSH_MAX_WAIT);
    idle_since_flush = 0;
}

static void on_flush_idle(struct ev_loop *loop, ev_idle *w, int revents) {
    flush_now(loop);
}

static void on_flush_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    flush_now(loop);
}

/* The loop's time when its last wait for I/O returned (0: not yet). */
static double iteration_start;

static void on_check(struct ev_loop *loop, ev_check *w, int revents) {
    iteration_start = ev_now(loop); /* libev read the clock as the wait returned */
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
    session_untrack_closing();
    double now = ev_time();
    if (iteration_start > 0 && metrics_loop_iteration(now - iteration_start))
        plog_limited(LOG_WARN, "loop_stall", "ms=%.1f connections=%llu", (now - iteration_start) * 1e3,
                     (unsigned long long)metrics.connections);
    if (!session_flush_pending()) {
        idle_since_flush = 1; /* the wait that follows is time to spare */
        return;
    }
    if (ev_is_active(&flush_timer))
        return;
    if (flush_first_queued == 0)
        flush_first_queued = now;
    /* libev's epoll never sleeps less than 1 ms: a shorter wait would turn
     * into "write each message when the next one arrives". */
    if (flush_not_before > now + FLUSH_MIN_WAIT) {
        ev_timer_set(&flush_timer, flush_not_before - now, 0.);
        ev_timer_start(loop, &flush_timer);
    } else if (now - flush_first_queued >= FLUSH_MAX_DEFER) {
        flush_now(loop);
    } else {
        ev_idle_start(loop, &flush_idle);
    }
}

static void on_stop_tick(struct ev_loop *loop, ev_timer *w, int revents) {
    if (metrics.connections == 0 || ev_now(loop) >= stop_deadline) {
        if (metrics.connections)
            plog(LOG_WARN, "shutdown_grace_expired", "connections=%llu",
                 (unsigned long long)metrics.connections);
        ev_break(loop, EVBREAK_ALL);
    }
}

/* SIGTERM / SIGINT: stop accepting, close every socket with 1001 so that
 * clients reconnect (to another node, or to this one when it is back), wait
 * up to --shutdown-grace seconds for the closes, then exit 0. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    if (http_stopping)
        return;
    http_stopping = 1;
    plog(LOG_INFO, "stopping", "signal=%d connections=%llu", w->signum,
         (unsigned long long)metrics.connections);
    /* New connections are refused from here on (with --reuseport, they go
     * to the other nodes on the port). */
    listener_stop();
    session_close_all(CLOSE_GOING_AWAY, "server shutting down");
    stop_deadline = ev_now(loop) + (double)config.shutdown_grace;
    ev_timer_init(&stop_timer, on_stop_tick, 0.02, 0.02);
    ev_timer_start(loop, &stop_timer);
}

/* A node id unique to this start: "n" and 12 random hex digits. A
 * restarted node is a new presence replica, as in Phoenix.Tracker. */
static void make_node_id(char *out, size_t size) {
    unsigned char b[6] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) {
        unsigned long x = (unsigned long)getpid() ^ (unsigned long)time(NULL) * 2654435761u;
        memcpy(b, &x, sizeof b < sizeof x ? sizeof b : sizeof x);
    }
    if (f)
        fclose(f);
    snprintf(out, size, "n%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

/* Sets the soft limit on open descriptors to what the node needs, before
 * lws sizes its fd table from it: every connection is a descriptor, and lws
 * refuses sockets past its table. But lws 4.1.6 as Debian builds it walks
 * that whole table, one slot per descriptor of the limit, on every close
 * (twice, however few connections are open): with a limit of a million,
 * common in containers, each close cost about 0.6 ms. The node needs
 * --max-connections and FD_HEADROOM more (Redis, files, sockets being
 * admitted), or FD_LIMIT_DEFAULT without --max-connections; the soft limit
 * is raised or lowered to that, within the hard one. Returns the limit in
 * force, or -1 if it cannot be read. */
#define FD_HEADROOM 1024
#define FD_LIMIT_DEFAULT 65536
static long set_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    rlim_t want = config.max_connections ? (rlim_t)config.max_connections + FD_HEADROOM : FD_LIMIT_DEFAULT;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur != want) {
        struct rlimit set = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &set) == 0)
            rl.rlim_cur = want;
        else
            plog(LOG_WARN, "fd_limit_not_set", "soft=%llu hard=%llu wanted=%llu", (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max, (unsigned long long)want);
    }
    return rl.rlim_cur == RLIM_INFINITY ? FD_LIMIT_DEFAULT : (long)rl.rlim_cur;
}

static int split_listen(const char *listen, char *host, size_t hostsz, int *port) {
    const char *colon = strrchr(listen, ':');
    size_t hl = (size_t)(colon - listen);
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hl == 0 || hl >= hostsz || *end || p < 0 || p > 65535)
        return -1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    /* Allow [::1]:4000. */
    if (host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    *port = (int)p;
    return 0;
}

/* Keys, the auth mode and namespace options: checked before anything
 * listens, so a mistake stops the start with a clear message. */
static int setup_auth(void) {
    char err[256];
    if (strcmp(config.auth, "anonymous") != 0 && strcmp(config.auth, "required") != 0) {
        fprintf(stderr, "parley: --auth must be anonymous or required, not \"%s\"\n",
                config.auth);
        return -1;
    }
    int n = *config.auth_keys ? auth_set_keys(config.auth_keys, err, sizeof err) : 0;
    if (n < 0) {
        fprintf(stderr, "parley: --auth-keys: %s\n", err);
        return -1;
    }
    /* The keys are in memory now; do not leave them in the environment of
     * processes we might start. */
    unsetenv("PARLEY_AUTH_KEYS");
    if (n == 0 && strcmp(config.auth, "required") == 0) {
        fprintf(stderr, "parley: --auth required needs --auth-keys\n");
        return -1;
    }
    if (ns_load(config.namespaces, err, sizeof err)) {
        fprintf(stderr, "parley: --namespaces: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int rc = config_load(argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (tls_check() || session_limits_init())
        return 2;
    log_hook_lws();
    signal(SIGPIPE, SIG_IGN);

    char host[128];
    int port;
    if (split_listen(config.listen, host, sizeof host, &port)) {
        fprintf(stderr, "parley: --listen must be HOST:PORT, not \"%s\"\n", config.listen);
        return 2;
    }

    if (setup_auth())
        return 2;
    long fd_limit = set_fd_limit();
    if (gate_init(fd_limit)) {
        plog(LOG_ERROR, "startup_failed", "reason=\"out of memory\"");
        return 1;
    }

    struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!loop) {
        plog(LOG_ERROR, "startup_failed", "reason=\"no epoll loop\"");
        return 1;
    }
    static char node_id[16];
    make_node_id(node_id, sizeof node_id);
    http_node_id = node_id;
    if (presence_init(node_id)) {
        plog(LOG_ERROR, "startup_failed", "reason=\"out of memory\"");
        return 1;
    }
    if (cluster_init(node_id))
        return 2;
    void *foreign_loops[1] = {loop};

    struct lws_protocols protocols[2];
    transport_protocols(protocols, (size_t)config.rx_buffer);

    /* /healthz and /metrics go to our callback; with --static-dir, every
     * other path is a file under it (index.html for a directory). */
    static struct lws_http_mount mounts[3];
    memset(mounts, 0, sizeof mounts);
    const char *const dyn[2] = {"/healthz", "/metrics"};
    int nm = 0;
    for (int i = 0; i < 2; i++, nm++) {
        mounts[nm].mountpoint = dyn[i];
        mounts[nm].mountpoint_len = (unsigned char)strlen(dyn[i]);
        mounts[nm].origin = TRANSPORT_PROTOCOL;
        mounts[nm].origin_protocol = LWSMPRO_CALLBACK;
    }
    if (*config.static_dir) {
        mounts[nm].mountpoint = "/";
        mounts[nm].mountpoint_len = 1;
        mounts[nm].origin = config.static_dir;
        mounts[nm].def = "index.html";
        mounts[nm].origin_protocol = LWSMPRO_FILE;
        nm++;
    }
    for (int i = 0; i + 1 < nm; i++)
        mounts[i].mount_next = &mounts[i + 1];

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* lws serves the connections we accept (listener.c), with no listening
     * socket of its own. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.mounts = mounts;
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = foreign_loops;
    info.count_threads = 1;
    tls_context_info(&info); /* with --tls-cert: the port speaks only TLS */
    /* Request heads of up to 8 KB, as nginx and most proxies take (lws'
     * default is 4 KB): phoenix.js' authToken and a few cookies fit. The
     * space is held only during the handshake. A longer head is closed
     * with the lws log line "Ran out of header data space". */
    info.max_http_header_data = HTTP_HEAD_MAX;
    /* No lws keepalive: lws' default policy pings every socket after 300 s
     * without traffic it counts and hangs up at 310 s, keeping one timer
     * per socket in a sorted list that every insertion walks (accepting a
     * connection inserts a few: O(connections) each). Liveness is ours
     * already: --idle-timeout closes sockets that send nothing, and Phoenix
     * clients send a heartbeat every 30 s. */
    static const lws_retry_bo_t no_keepalive = {0};
    info.retry_and_idle_policy = &no_keepalive;

    context = lws_create_context(&info);
    if (!context) {
        plog(LOG_ERROR, "startup_failed", "reason=\"cannot create the lws context\" listen=%s",
             config.listen);
        return 1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(context, "default");
    /* With --reuseport 1 several nodes share the port, the kernel spreading
     * new connections over them: the way to use every core and to pass the
     * per-process descriptor limit. */
    /* The listener can take phoenix.js' authToken out of a plaintext request
     * only: a TLS one is read by lws. */
    int sniff = auth_nkeys() > 0 && !tls_enabled();
    int bound = vh ? listener_start(host, port, (int)config.reuseport, vh, sniff) : -1;
    if (bound <= 0) {
        plog(LOG_ERROR, "startup_failed", "reason=\"cannot listen\" listen=%s", config.listen);
        lws_context_destroy(context);
        return 1;
    }

    http_started_at = ev_now(loop);
    ev_idle_init(&flush_idle, on_flush_idle);
    ev_timer_init(&flush_timer, on_flush_timer, 0., 0.);
    ev_prepare_init(&flush_watcher, on_prepare);
    ev_prepare_start(loop, &flush_watcher);
    ev_check_init(&loop_check, on_check);
    ev_check_start(loop, &loop_check);
    ev_timer_init(&sweep_timer, on_sweep, 1.0, 1.0);
    ev_timer_start(loop, &sweep_timer);
    ev_signal_init(&sigterm_watcher, on_signal, SIGTERM);
    ev_signal_start(loop, &sigterm_watcher);
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_start(loop, &sigint_watcher);

    plog(LOG_INFO, "listening",
         "host=%s port=%d node=%s version=%s static_dir=\"%s\" fd_limit=%ld auth=%s keys=%zu %s",
         host, bound, node_id, PARLEY_VERSION, config.static_dir, fd_limit, config.auth,
         auth_nkeys(), tls_describe());
    ev_run(loop, 0);

    cluster_shutdown();
    ev_timer_stop(loop, &sweep_timer);
    ev_timer_stop(loop, &stop_timer);
    ev_prepare_stop(loop, &flush_watcher);
    ev_check_stop(loop, &loop_check);
    ev_idle_stop(loop, &flush_idle);
    ev_timer_stop(loop, &flush_timer);
    ev_signal_stop(loop, &sigterm_watcher);
    ev_signal_stop(loop, &sigint_watcher);
    listener_stop();
    lws_context_destroy(context);
    presence_shutdown();
    gate_shutdown();
    ns_free();
    auth_clear_keys();
    plog(LOG_INFO, "stopped", NULL);
    return 0;
}
