/* loadgen.h -- what the parent process and the worker processes of
 * parley-loadgen share: the options, and the counters and histograms that
 * live in one MAP_SHARED region (each worker writes only its own slot; the
 * parent reads them all for the progress line and the report). */
#ifndef LOADGEN_H
#define LOADGEN_H

#include "hist.h"
#include "token.h"
#include "ws.h"

#include <stdint.h>

#define MAX_TARGETS 16
#define MAX_WORKERS 64
#define MAX_SERVER_PIDS 16
#define TOKEN "LG1:" /* starts the timestamp token in every chat message body */

enum scenario { SC_CONNECT, SC_ROOMS, SC_FANOUT, SC_PRESENCE, SC_CROSSNODE };

typedef struct opts {
    enum scenario scenario;
    const char *scenario_name;
    const char *urls[MAX_TARGETS];
    int nurls;
    int msgpack;            /* serializer: 0 JSON (V2), 1 MessagePack */
    int conns;              /* users / subscribers */
    int publishers;         /* fanout, crossnode */
    int rooms;              /* connect, rooms */
    double rate;            /* rooms: msg/s per user; fanout: msg/s in all; presence: joins/s */
    double ramp;            /* connections opened per second (0: as fast as possible) */
    int concurrency;        /* per worker: handshakes and joins in flight at once */
    int messages;           /* fanout: messages to send (0: rate x duration) */
    int burst;              /* fanout: send them back to back */
    int payload;            /* bytes of the message body */
    double duration, warmup, hold, timeout, drain;
    int heartbeat_s;
    int poll_us; /* --poll-interval */
    int workers;
    int source_ips;         /* spread sources over this many 127.0.0.0/8 addresses */
    const char *topic;      /* topic prefix */
    int server_pids[MAX_SERVER_PIDS];
    int nserver_pids;
    const char *report, *csv;
    int quiet;
    int track;              /* fanout: messages tracked for first/last receiver */
    int abuse;              /* enum abuse: one extra, abusive connection */
    double abuse_reconnect; /* seconds before it reconnects once closed; < 0: never */
    int abuse_normal;       /* --abuse-priority normal: the abuser is not SCHED_IDLE */
    double abuse_hold;      /* seconds after which it hangs up by itself; 0: never */
    int tokens;             /* --token-key given: each connection gets a token */
    token_key_t token_key;
    const char *token_tenant; /* the tokens' tenant claim; NULL: none */
} opts_t;

/* --abuse: what the one extra connection does (abuse.c). */
enum abuse { AB_NONE, AB_FLOOD, AB_SLOWREAD, AB_JOINSPAM };
extern const char *const abuse_names[4];

/* Error kinds, as reported. */
enum err {
    E_CONNECT, E_HANDSHAKE, E_JOIN, E_JOIN_TIMEOUT, E_PUSH, E_CLOSED, E_CHANNEL, E_PROTOCOL,
    E_LOCAL, E_N
};
extern const char *const err_names[E_N];

/* Close codes counted separately (the last slot: any other). */
#define NCODES 15
extern const int close_codes[NCODES];

enum phase { PH_CONNECT, PH_RUN, PH_STOP };

/* The parent writes, workers read. */
typedef struct control {
    volatile uint64_t phase;
    volatile uint64_t t0;         /* run phase: the schedule's origin (ns) */
    volatile uint64_t t_measure;  /* messages due before this are warm-up (not timed) */
} control_t;

/* One worker's counters. Plain words written by their worker only; the
 * parent's reads may be a moment old, never torn (aligned 64-bit). */
typedef struct wslot {
    uint64_t pid;
    uint64_t clients;                 /* connections this worker owns */
    uint64_t opened, upgraded, joined, dead, open_now;
    uint64_t errors[E_N];
    uint64_t codes[NCODES];
    uint64_t sent, sent_timed, acked, nacked, expected; /* sent_timed: due in the window */
    uint64_t received, unique, dups, ooo, lost, untimed, other;
    uint64_t heartbeats;
    uint64_t first_send_ns, last_send_ns, last_rx_ns, last_join_ns;
    uint64_t max_send_lag_ns;
    uint64_t cpu_ns;
    uint64_t ready, sent_done, final;  /* phase flags */
    uint64_t converged, last_converged_ns, presence_frames, presence_bytes;
    uint64_t pubs_with_loss;
    uint64_t abuse_seen;              /* the abuser's messages read by ordinary clients */
    hist_t connect, join, send_lag;
    hist_t transit; /* from the write to the arrival: parley and the network only */
    /* --abuse: the same transits, split by whether they arrived while an
     * abuser's connection was open (from its connect to ABUSE_AFTER_NS
     * after it ended) or apart from it */
    hist_t transit_during, transit_apart;
    hist_t latency[MAX_TARGETS];
} wslot_t;

/* The abusive connection's counters (--abuse), written by its process. */
typedef struct abuse_slot {
    uint64_t conns, upgraded;          /* connections opened, upgraded */
    uint64_t sent;                     /* abusive messages written (chat messages or joins) */
    uint64_t acked, limited, too_large, other_errors; /* replies: ok, rate_limited, ... */
    uint64_t closes;                   /* times the server closed it */
    uint64_t codes[NCODES];            /* their close codes (1006: no close frame) */
    uint64_t close_ns_sum, close_ns_first, close_ns_max; /* first abusive write -> close */
    uint64_t abusing_ns;               /* time connected in the measured window */
    uint64_t bytes_read;
    uint64_t cpu_ns, final;
    /* its latest connection: open from active_from to active_until
     * (UINT64_MAX while open), for the workers to split transits by */
    uint64_t active_from, active_until;
    uint64_t sched_idle; /* its process did run at SCHED_IDLE */
} abuse_slot_t;

#define ABUSE_AFTER_NS 50000000ull /* how long after an abuser's connection its effect is looked for */

typedef struct shared {
    control_t ctl;
    wslot_t w[MAX_WORKERS];
    abuse_slot_t abuse;
} shared_t;

extern opts_t O;
extern ws_target_t targets[MAX_TARGETS];
extern shared_t *SH;
extern uint32_t *sent_by;   /* per publisher (token id): messages sent, shared */
extern uint64_t *msg_times; /* fanout: per worker, per target, per message: first, last read */
extern int npubs_total;     /* entries of sent_by */
extern uint64_t nmessages;  /* fanout: messages in the schedule */

/* Scenario geometry, the same in every process. */
int total_conns(void);
int conn_target(int index);
const char *scenario_topic(int index, char *buf, size_t len);
/* The token of user "loadgen-WHO" (--token-key), or NULL without one. */
const char *conn_token(const char *who, char *buf, size_t len);
#define CONN_TOKEN_MAX 1024

void worker_main(int w, int wake_fd);
/* The abusive connection's process (--abuse). */
void abuser_main(int wake_fd);

#endif
