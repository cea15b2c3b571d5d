/* report.c -- writing results (see report.h). */
#include "report.h"

#include <jansson.h>
#include <string.h>

const char *const err_names[E_N] = {"connect", "handshake", "join", "join_timeout", "push",
                                    "closed", "channel", "protocol", "local"};
const int close_codes[NCODES] = {1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009,
                                 1011, 4000, 4001, 4002, 4003, 4004, 0};

static double server_cpu_s(const results_t *r) {
    double s = 0;
    for (int i = 0; i < r->nservers; i++)
        if (r->servers[i].cpu_w1 >= 0 && r->servers[i].cpu_w0 >= 0)
            s += (double)(r->servers[i].cpu_w1 - r->servers[i].cpu_w0) / 1e9;
    return s;
}

static long server_hwm_kb(const results_t *r) {
    long m = -1;
    for (int i = 0; i < r->nservers; i++)
        if (r->servers[i].hwm_kb > m)
            m = r->servers[i].hwm_kb;
    return m;
}

static void print_hist(FILE *f, const char *name, const hist_t *h) {
    hist_summary_t s = hist_summarize(h);
    if (!s.count)
        return;
    fprintf(f, "  %-22s n=%-9llu p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms\n", name,
            (unsigned long long)s.count, s.p50, s.p90, s.p99, s.p999, s.max);
}

/* --abuse: what the abusive connection did and what became of it. */
static void abuse_summary(FILE *f, const results_t *r) {
    const abuse_slot_t *a = &r->abuse;
    fprintf(f, "  abuser (%s): %llu connections (%llu upgraded), %llu %s sent: %llu ok, %llu "
               "rate_limited, %llu payload_too_large, %llu other errors; %llu of its messages "
               "reached the others\n",
            abuse_names[O.abuse], (unsigned long long)a->conns, (unsigned long long)a->upgraded,
            (unsigned long long)a->sent, O.abuse == AB_FLOOD ? "messages" : "joins",
            (unsigned long long)a->acked, (unsigned long long)a->limited,
            (unsigned long long)a->too_large, (unsigned long long)a->other_errors,
            (unsigned long long)r->t.abuse_seen);
    fprintf(f, "  abuser closed by the server %llu times", (unsigned long long)a->closes);
    for (int i = 0; i < NCODES; i++)
        if (a->codes[i])
            fprintf(f, " [close %d: %llu]", close_codes[i], (unsigned long long)a->codes[i]);
    if (a->closes)
        fprintf(f, ", %.1f ms after its first abusive write (first %.1f, max %.1f)",
                (double)a->close_ns_sum / (double)a->closes / 1e6, (double)a->close_ns_first / 1e6,
                (double)a->close_ns_max / 1e6);
    fprintf(f, "; connected %.2f s of the window, cpu %.3f s\n", (double)a->abusing_ns / 1e9,
            (double)a->cpu_ns / 1e9);
    print_hist(f, "transit during abuse", &r->t.transit_during);
    print_hist(f, "transit apart", &r->t.transit_apart);
}

void report_summary(FILE *f, const results_t *r) {
    const wslot_t *t = &r->t;
    fprintf(f, "\n== parley-loadgen %s (%s) ==\n", O.scenario_name, O.msgpack ? "msgpack" : "json");
    fprintf(f, "  machine: %d cores, %s, %s\n", r->machine.cores, r->machine.kernel, r->machine.cpu);
    fprintf(f, "  connections: %llu opened, %llu upgraded, %llu joined in %.2f s (%.0f/s)\n",
            (unsigned long long)t->opened, (unsigned long long)t->upgraded,
            (unsigned long long)t->joined, r->connect_s,
            r->connect_s > 0 ? (double)(O.scenario == SC_PRESENCE ? t->upgraded : t->joined) / r->connect_s : 0);
    print_hist(f, "connect (to 101)", &t->connect);
    print_hist(f, "join (to reply)", &t->join);
    if (t->sent) {
        fprintf(f, "  %s: %llu sent (%llu acked, %llu refused), %llu received, %llu expected\n",
                O.scenario == SC_PRESENCE ? "joins" : "messages", (unsigned long long)t->sent,
                (unsigned long long)t->acked, (unsigned long long)t->nacked,
                (unsigned long long)t->received, (unsigned long long)t->expected);
        if (O.scenario != SC_PRESENCE)
            fprintf(f, "  accounting: lost %llu, duplicated %llu, out of order %llu, "
                       "publishers with loss %llu, unparseable %llu\n",
                    (unsigned long long)t->lost, (unsigned long long)t->dups,
                    (unsigned long long)t->ooo, (unsigned long long)t->pubs_with_loss,
                    (unsigned long long)t->other);
        print_hist(f, "send lag", &t->send_lag);
    }
    print_hist(f, "latency (all)", &r->latency);
    if (t->sent && O.scenario != SC_PRESENCE)
        print_hist(f, "transit", &t->transit);
    if (O.nurls > 1)
        for (int i = 0; i < O.nurls; i++) {
            char name[64];
            snprintf(name, sizeof name, "latency (target %d)", i);
            print_hist(f, name, &t->latency[i]);
        }
    if (r->have_fl) {
        print_hist(f, "first receiver", &r->first);
        print_hist(f, "last receiver", &r->last);
        if (O.nurls > 1)
            for (int i = 0; i < O.nurls; i++) {
                char name[64];
                snprintf(name, sizeof name, "last receiver (t%d)", i);
                print_hist(f, name, &r->last_t[i]);
            }
    }
    if (O.scenario == SC_PRESENCE)
        fprintf(f, "  presence: %llu/%d views complete; last join written at %.1f ms, "
                   "last view complete at %.1f ms (%.1f ms after the last join)\n",
                (unsigned long long)t->converged, O.conns, r->presence_last_join_ms,
                r->presence_converged_ms, r->presence_converged_ms - r->presence_last_join_ms);
    int any = 0;
    for (int e = 0; e < E_N; e++)
        if (t->errors[e]) {
            fprintf(f, "%s%s %llu", any ? ", " : "  errors: ", err_names[e],
                    (unsigned long long)t->errors[e]);
            any = 1;
        }
    for (int i = 0; i < NCODES; i++)
        if (t->codes[i])
            fprintf(f, " [close %d: %llu]", close_codes[i], (unsigned long long)t->codes[i]);
    if (any)
        fputc('\n', f);
    if (O.abuse)
        abuse_summary(f, r);
    double scpu = server_cpu_s(r);
    fprintf(f, "  window %.3f s: %.0f x %s (%.0f/s)\n", r->window_s, r->units, r->unit,
            r->window_s > 0 ? r->units / r->window_s : 0);
    if (r->units > 0)
        fprintf(f, "  cpu per %s: server %.3f us, loadgen %.3f us\n", r->unit,
                r->nservers ? scpu * 1e6 / r->units : -1.0, r->loadgen_cpu_s * 1e6 / r->units);
    for (int i = 0; i < r->nservers; i++) {
        const server_stat_t *s = &r->servers[i];
        fprintf(f, "  server pid %d: rss %ld -> %ld kB (joined), peak %ld kB", s->pid, s->rss_start_kb,
                s->rss_joined_kb, s->hwm_kb);
        if (t->joined && s->rss_joined_kb > s->rss_start_kb && r->nservers == 1)
            fprintf(f, ", %.0f B per connection",
                    (double)(s->rss_joined_kb - s->rss_start_kb) * 1024.0 / (double)t->joined);
        fputc('\n', f);
    }
    fprintf(f, "  result: %s\n", r->verdict);
}

static json_t *hist_json(const hist_t *h) {
    hist_summary_t s = hist_summarize(h);
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)s.count, "min", s.min,
                     "mean", s.mean, "p50", s.p50, "p90", s.p90, "p99", s.p99, "p999", s.p999, "max",
                     s.max);
}

static json_t *abuse_json(const results_t *r) {
    const abuse_slot_t *a = &r->abuse;
    json_t *codes = json_object();
    for (int i = 0; i < NCODES; i++)
        if (a->codes[i]) {
            char k[16];
            snprintf(k, sizeof k, "%d", close_codes[i]);
            json_object_set_new(codes, i == NCODES - 1 ? "other" : k, json_integer((json_int_t)a->codes[i]));
        }
    double n = a->closes ? (double)a->closes : 1;
    return json_pack("{s:s,s:f,s:f,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:f,s:f,s:f,s:f,s:I,s:f,s:o,s:o}", "kind",
                     abuse_names[O.abuse], "reconnect_s", O.abuse_reconnect, "hold_s", O.abuse_hold, "priority",
                     a->sched_idle ? "idle" : "normal", "connections",
                     (json_int_t)a->conns, "upgraded", (json_int_t)a->upgraded, "sent",
                     (json_int_t)a->sent, "acked", (json_int_t)a->acked, "rate_limited",
                     (json_int_t)a->limited, "payload_too_large", (json_int_t)a->too_large,
                     "other_errors", (json_int_t)a->other_errors, "closed_by_server",
                     (json_int_t)a->closes, "close_codes", codes, "close_after_ms_mean",
                     a->closes ? (double)a->close_ns_sum / n / 1e6 : -1.0,
                     "close_after_ms_first", a->closes ? (double)a->close_ns_first / 1e6 : -1.0,
                     "close_after_ms_max", a->closes ? (double)a->close_ns_max / 1e6 : -1.0,
                     "connected_s", (double)a->abusing_ns / 1e9, "delivered_to_others",
                     (json_int_t)r->t.abuse_seen, "cpu_s", (double)a->cpu_ns / 1e9,
                     "others_transit_during_ms", hist_json(&r->t.transit_during),
                     "others_transit_apart_ms", hist_json(&r->t.transit_apart));
}

int report_json(const char *path, const results_t *r) {
    const wslot_t *t = &r->t;
    json_t *root = json_object();
    json_t *urls = json_array();
    for (int i = 0; i < O.nurls; i++)
        json_array_append_new(urls, json_string(O.urls[i]));
    json_object_set_new(root, "scenario", json_string(O.scenario_name));
    json_object_set_new(root, "serializer", json_string(O.msgpack ? "msgpack" : "json"));
    json_object_set_new(root, "date", json_string(r->date));
    json_object_set_new(root, "command", json_string(r->command));
    json_object_set_new(root, "machine",
                        json_pack("{s:i,s:s,s:s,s:s}", "cores", r->machine.cores, "kernel",
                                  r->machine.kernel, "cpu", r->machine.cpu, "hostname",
                                  r->machine.hostname));
    json_object_set_new(
        root, "params",
        json_pack("{s:o,s:i,s:i,s:i,s:f,s:f,s:i,s:b,s:i,s:f,s:f,s:f,s:i,s:i,s:b,s:i,s:i}", "urls", urls,
                  "conns", O.conns, "publishers", O.publishers, "rooms", O.rooms, "rate", O.rate,
                  "ramp", O.ramp, "messages", (int)nmessages, "burst", O.burst, "payload", O.payload,
                  "duration_s", O.duration, "warmup_s", O.warmup, "hold_s", O.hold, "workers",
                  O.workers, "source_ips", O.source_ips, "tokens", O.tokens, "heartbeat_s",
                  O.heartbeat_s, "poll_interval_us", O.poll_us));
    json_object_set_new(
        root, "connections",
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:o,s:o}", "opened", (json_int_t)t->opened, "upgraded",
                  (json_int_t)t->upgraded, "joined", (json_int_t)t->joined, "open_at_end",
                  (json_int_t)t->open_now, "heartbeat_replies", (json_int_t)t->heartbeats, "seconds", r->connect_s, "per_s",
                  r->connect_s > 0 ? (double)(O.scenario == SC_PRESENCE ? t->upgraded : t->joined) / r->connect_s : 0.0,
                  "connect_ms", hist_json(&t->connect), "join_ms", hist_json(&t->join)));
    json_t *lat_t = json_array();
    for (int i = 0; i < O.nurls; i++)
        json_array_append_new(lat_t, hist_json(&t->latency[i]));
    json_object_set_new(
        root, "messages",
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "sent",
                  (json_int_t)t->sent, "sent_in_window", (json_int_t)t->sent_timed, "acked", (json_int_t)t->acked, "refused",
                  (json_int_t)t->nacked, "expected", (json_int_t)t->expected, "received",
                  (json_int_t)t->received, "unique", (json_int_t)t->unique, "lost",
                  (json_int_t)t->lost, "duplicated", (json_int_t)t->dups, "out_of_order",
                  (json_int_t)t->ooo, "publishers_with_loss", (json_int_t)t->pubs_with_loss,
                  "unparseable", (json_int_t)t->other, "untimed", (json_int_t)t->untimed,
                  "sent_per_s", r->window_s > 0 ? (double)t->sent_timed / r->window_s : 0.0,
                  "received_per_s", r->window_s > 0 ? r->units / r->window_s : 0.0));
    json_object_set_new(root, "latency_ms", hist_json(&r->latency));
    json_object_set_new(root, "latency_by_target_ms", lat_t);
    json_object_set_new(root, "send_lag_ms", hist_json(&t->send_lag));
    json_object_set_new(root, "transit_ms", hist_json(&t->transit));
    if (r->have_fl) {
        json_t *ft = json_array(), *lt = json_array();
        for (int i = 0; i < O.nurls; i++) {
            json_array_append_new(ft, hist_json(&r->first_t[i]));
            json_array_append_new(lt, hist_json(&r->last_t[i]));
        }
        json_object_set_new(root, "fanout",
                            json_pack("{s:I,s:o,s:o,s:o,s:o}", "messages_read",
                                      (json_int_t)r->fl_messages, "first_receiver_ms",
                                      hist_json(&r->first), "last_receiver_ms", hist_json(&r->last),
                                      "first_receiver_by_target_ms", ft,
                                      "last_receiver_by_target_ms", lt));
    }
    if (O.scenario == SC_PRESENCE)
        json_object_set_new(root, "presence",
                            json_pack("{s:i,s:I,s:f,s:f,s:f,s:I,s:I}", "users", O.conns,
                                      "views_complete", (json_int_t)t->converged, "last_join_ms",
                                      r->presence_last_join_ms, "last_view_complete_ms",
                                      r->presence_converged_ms, "convergence_ms",
                                      r->presence_converged_ms - r->presence_last_join_ms, "frames",
                                      (json_int_t)t->presence_frames, "bytes",
                                      (json_int_t)t->presence_bytes));
    json_t *errs = json_object(), *codes = json_object();
    for (int e = 0; e < E_N; e++)
        json_object_set_new(errs, err_names[e], json_integer((json_int_t)t->errors[e]));
    for (int i = 0; i < NCODES; i++)
        if (t->codes[i]) {
            char k[16];
            snprintf(k, sizeof k, "%d", close_codes[i]);
            json_object_set_new(codes, i == NCODES - 1 ? "other" : k, json_integer((json_int_t)t->codes[i]));
        }
    json_object_set_new(errs, "close_codes", codes);
    json_object_set_new(root, "errors", errs);
    if (O.abuse)
        json_object_set_new(root, "abuser", abuse_json(r));
    double scpu = server_cpu_s(r);
    json_t *servers = json_array();
    for (int i = 0; i < r->nservers; i++) {
        const server_stat_t *s = &r->servers[i];
        json_array_append_new(
            servers, json_pack("{s:i,s:f,s:I,s:I,s:I,s:I}", "pid", s->pid, "cpu_s",
                               s->cpu_w1 >= 0 ? (double)(s->cpu_w1 - s->cpu_w0) / 1e9 : -1.0,
                               "rss_start_kb", (json_int_t)s->rss_start_kb, "rss_joined_kb",
                               (json_int_t)s->rss_joined_kb, "rss_end_kb", (json_int_t)s->rss_end_kb,
                               "rss_peak_kb", (json_int_t)s->hwm_kb));
    }
    double per_conn = -1;
    if (r->nservers == 1 && t->joined && r->servers[0].rss_joined_kb > r->servers[0].rss_start_kb)
        per_conn = (double)(r->servers[0].rss_joined_kb - r->servers[0].rss_start_kb) * 1024.0 /
                   (double)t->joined;
    json_object_set_new(
        root, "cpu",
        json_pack("{s:f,s:s,s:f,s:f,s:f,s:f,s:f,s:f}", "window_s", r->window_s, "unit", r->unit,
                  "units", r->units, "server_s", r->nservers ? scpu : -1.0, "server_us_per_unit",
                  r->nservers && r->units > 0 ? scpu * 1e6 / r->units : -1.0, "loadgen_s",
                  r->loadgen_cpu_s, "loadgen_us_per_unit",
                  r->units > 0 ? r->loadgen_cpu_s * 1e6 / r->units : -1.0, "loadgen_total_s",
                  r->loadgen_cpu_total_s));
    json_object_set_new(root, "servers", servers);
    json_object_set_new(root, "server_rss_peak_kb", json_integer(server_hwm_kb(r)));
    json_object_set_new(root, "server_bytes_per_connection", json_real(per_conn));
    json_object_set_new(root, "ok", json_boolean(r->ok));
    json_object_set_new(root, "verdict", json_string(r->verdict));
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    json_decref(root);
    return rc;
}
