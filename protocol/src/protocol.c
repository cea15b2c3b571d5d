/* protocol.c -- the codec's entry points: decode a client message into a
 * proto_msg_t and check its fields, encode server messages, and choose the
 * serializer from the connect parameters. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- decoding ----------------------------------------------------------- */

static void limits_or_defaults(const proto_limits_t *in, proto_limits_t *out) {
    out->max_message = in && in->max_message ? in->max_message : PROTO_DEFAULT_MAX_MESSAGE;
    out->max_topic = in && in->max_topic ? in->max_topic : PROTO_DEFAULT_MAX_TOPIC;
    out->max_event = in && in->max_event ? in->max_event : PROTO_DEFAULT_MAX_EVENT;
    out->max_depth = in && in->max_depth ? in->max_depth : PROTO_DEFAULT_MAX_DEPTH;
}

/* A ref or join_ref: a string, or null. Returns 0 or PROTO_EFIELD. */
static int opt_string(const json_t *v, const char **out) {
    if (!v || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return PROTO_EFIELD;
    *out = json_string_value(v);
    return 0;
}

/* A topic or an event: a string without NUL characters. */
static int name_string(const json_t *v, const char **out, size_t *len) {
    if (!v || !json_is_string(v))
        return PROTO_EFIELD;
    *len = json_string_length(v);
    if (strlen(json_string_value(v)) != *len)
        return PROTO_EFIELD;
    *out = json_string_value(v);
    return 0;
}

int proto_decode(proto_format_t format, const uint8_t *buf, size_t len,
                 const proto_limits_t *limits, proto_msg_t *msg) {
    proto_limits_t lim;
    limits_or_defaults(limits, &lim);
    memset(msg, 0, sizeof *msg);
    if (len > lim.max_message)
        return PROTO_ETOOBIG;

    if (format != PROTO_V1_JSON && format != PROTO_V2_JSON && format != PROTO_MSGPACK)
        return PROTO_EVSN;
    json_t *root = NULL;
    int rc = format == PROTO_MSGPACK ? proto_msgpack_parse(buf, len, lim.max_depth, &root)
                                     : proto_json_parse(buf, len, lim.max_depth, &root);
    if (rc)
        return rc;

    json_t *jr, *ref, *topic, *event, *payload;
    if (format == PROTO_V1_JSON) {
        if (!json_is_object(root)) {
            rc = PROTO_ESHAPE;
            goto fail;
        }
        jr = json_object_get(root, "join_ref");
        ref = json_object_get(root, "ref");
        topic = json_object_get(root, "topic");
        event = json_object_get(root, "event");
        payload = json_object_get(root, "payload");
        if (!topic || !event || !payload) {
            rc = PROTO_ESHAPE;
            goto fail;
        }
    } else {
        if (!json_is_array(root) || json_array_size(root) != 5) {
            rc = PROTO_ESHAPE;
            goto fail;
        }
        jr = json_array_get(root, 0);
        ref = json_array_get(root, 1);
        topic = json_array_get(root, 2);
        event = json_array_get(root, 3);
        payload = json_array_get(root, 4);
    }
    if ((rc = opt_string(jr, &msg->join_ref)) || (rc = opt_string(ref, &msg->ref)) ||
        (rc = name_string(topic, &msg->topic, &msg->topic_len)) ||
        (rc = name_string(event, &msg->event, &msg->event_len)))
        goto fail;
    msg->payload = payload;
    msg->root = root;
    /* From here on the message is addressable: the caller can reply. */
    if (msg->topic_len == 0 || msg->topic_len > lim.max_topic)
        return PROTO_ETOPIC;
    if (msg->event_len == 0 || msg->event_len > lim.max_event)
        return PROTO_EEVENT;
    if (!json_is_object(payload))
        return PROTO_EPAYLOAD;
    return 0;

fail:
    json_decref(root);
    memset(msg, 0, sizeof *msg);
    return rc;
}

void proto_msg_free(proto_msg_t *msg) {
    json_decref(msg->root);
    memset(msg, 0, sizeof *msg);
}

/* ---- encoding ----------------------------------------------------------- */

static int append_lit(proto_buf_t *out, const char *s) {
    return proto_buf_append(out, s, strlen(s));
}

static int append_opt_string(proto_buf_t *out, const char *s) {
    return s ? proto_json_append_string(out, s) : append_lit(out, "null");
}

/* A payload as encode_json writes it: a jansson value, bytes already
 * encoded (raw), or a reply, {"status": status, "response": value}. */
typedef struct payload {
    const json_t *value;
    const char *raw;
    size_t rawlen;
    const char *status;
} payload_t;

static int append_payload(proto_buf_t *out, const payload_t *p) {
    if (p->raw)
        return proto_buf_append(out, p->raw, p->rawlen);
    if (!p->status)
        return proto_json_append_value(out, p->value);
    /* Written here, not packed into an object for jansson to dump: jansson
     * allocates for each object it dumps (its cycle check), even for the
     * usual empty response. */
    int rc = append_lit(out, "{\"status\":");
    rc = rc ? rc : proto_json_append_string(out, p->status);
    rc = rc ? rc : append_lit(out, ",\"response\":");
    if (!rc)
        rc = json_is_object(p->value) && json_object_size(p->value) == 0 ? append_lit(out, "{}")
                                                                         : proto_json_append_value(out, p->value);
    return rc ? rc : append_lit(out, "}");
}

/* The JSON envelope around a payload. V1 carries no join_ref on the wire. */
static int encode_json(proto_format_t format, proto_buf_t *out, const char *join_ref,
                       const char *ref, const char *topic, const char *event, const payload_t *payload) {
#define PAYLOAD() append_payload(out, payload)
    size_t mark = out->len;
    int rc;
    if (format == PROTO_V2_JSON) {
        rc = append_lit(out, "[");
        rc = rc ? rc : append_opt_string(out, join_ref);
        rc = rc ? rc : append_lit(out, ",");
        rc = rc ? rc : append_opt_string(out, ref);
        rc = rc ? rc : append_lit(out, ",");
        rc = rc ? rc : proto_json_append_string(out, topic);
        rc = rc ? rc : append_lit(out, ",");
        rc = rc ? rc : proto_json_append_string(out, event);
        rc = rc ? rc : append_lit(out, ",");
        rc = rc ? rc : PAYLOAD();
        rc = rc ? rc : append_lit(out, "]");
    } else if (format == PROTO_V1_JSON) {
        rc = append_lit(out, "{\"topic\":");
        rc = rc ? rc : proto_json_append_string(out, topic);
        rc = rc ? rc : append_lit(out, ",\"event\":");
        rc = rc ? rc : proto_json_append_string(out, event);
        rc = rc ? rc : append_lit(out, ",\"payload\":");
        rc = rc ? rc : PAYLOAD();
        rc = rc ? rc : append_lit(out, ",\"ref\":");
        rc = rc ? rc : append_opt_string(out, ref);
        rc = rc ? rc : append_lit(out, "}");
    } else {
        rc = PROTO_EVSN;
    }
#undef PAYLOAD
    if (rc)
        out->len = mark; /* nothing of a message that failed */
    return rc;
}

int proto_encode(proto_format_t format, proto_buf_t *out, const char *join_ref,
                 const char *ref, const char *topic, const char *event,
                 const json_t *payload) {
    if (format == PROTO_MSGPACK)
        return proto_msgpack_encode(out, join_ref, ref, topic, event, payload);
    return encode_json(format, out, join_ref, ref, topic, event, &(payload_t){.value = payload});
}

int proto_encode_json_payload(proto_format_t format, proto_buf_t *out, const char *join_ref,
                              const char *ref, const char *topic, const char *event,
                              const char *payload_json, size_t len) {
    return encode_json(format, out, join_ref, ref, topic, event, &(payload_t){.raw = payload_json, .rawlen = len});
}

int proto_buf_append_json_string(proto_buf_t *out, const char *s) {
    return proto_json_append_string(out, s);
}

int proto_buf_append_json_value(proto_buf_t *out, const json_t *v) {
    return proto_json_append_value(out, v);
}

int proto_encode_reply(proto_format_t format, proto_buf_t *out, const char *join_ref,
                       const char *ref, const char *topic, const char *status,
                       const json_t *response) {
    if (!response || !status)
        return PROTO_ENOMEM; /* as packing them into an object would have failed */
    /* Written without building the payload object: every push's
     * acknowledgement is a reply. */
    if (format == PROTO_MSGPACK)
        return proto_msgpack_encode_reply(out, join_ref, ref, topic, status, response);
    return encode_json(format, out, join_ref, ref, topic, "phx_reply",
                       &(payload_t){.value = response, .status = status});
}

/* ---- negotiation -------------------------------------------------------- */

/* Parses "MAJOR.MINOR.PATCH" (digits only, as Elixir's Version.parse accepts
 * for release versions). Returns 0 or -1. */
static int parse_version(const char *s, long v[3]) {
    for (int i = 0; i < 3; i++) {
        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
            return -1; /* a digit first, and no leading zeros (as SemVer) */
        char *end;
        v[i] = strtol(s, &end, 10);
        if (end - s > 9)
            return -1;
        s = end;
        if (i < 2 && *s++ != '.')
            return -1;
    }
    return *s == '\0' ? 0 : -1;
}

int proto_negotiate(const char *vsn, const char *serializer, proto_format_t *format) {
    long v[3];
    if (parse_version(vsn ? vsn : "1.0.0", v))
        return PROTO_EVSN;
    /* Phoenix's requirements: "~> 1.0.0" for V1 and "~> 2.0.0" for V2. */
    int major = (v[0] == 1 || v[0] == 2) && v[1] == 0 ? (int)v[0] : 0;
    if (!major)
        return PROTO_EVSN;
    if (!serializer || strcmp(serializer, "json") == 0) {
        *format = major == 1 ? PROTO_V1_JSON : PROTO_V2_JSON;
        return 0;
    }
    if (strcmp(serializer, "msgpack") == 0 && major == 2) {
        *format = PROTO_MSGPACK;
        return 0;
    }
    return PROTO_EVSN;
}

/* ---- names -------------------------------------------------------------- */

const char *proto_strerror(int err) {
    switch (err) {
    case PROTO_OK: return "ok";
    case PROTO_ENOMEM: return "out of memory";
    case PROTO_ETOOBIG: return "message too big";
    case PROTO_EUTF8: return "invalid UTF-8";
    case PROTO_EDEPTH: return "nesting too deep";
    case PROTO_ESYNTAX: return "malformed message";
    case PROTO_ESHAPE: return "not a Phoenix message";
    case PROTO_EFIELD: return "invalid field type";
    case PROTO_ETOPIC: return "invalid topic";
    case PROTO_EEVENT: return "invalid event";
    case PROTO_EPAYLOAD: return "payload must be an object";
    case PROTO_ETYPE: return "unsupported MessagePack type";
    case PROTO_EVSN: return "unsupported vsn or serializer";
    }
    return "unknown error";
}

const char *proto_format_name(proto_format_t format) {
    switch (format) {
    case PROTO_V1_JSON: return "v1-json";
    case PROTO_V2_JSON: return "v2-json";
    case PROTO_MSGPACK: return "msgpack";
    }
    return "unknown";
}
