/* namespaces.c -- per-namespace topic options; see namespaces.h. */
#include "namespaces.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct ns {
    ns_options_t opt;
    UT_hash_handle hh;
    char name[];
} ns_t;

static ns_t *namespaces;
static const ns_options_t defaults = {-1, 1, 0};

void ns_free(void) {
    ns_t *n, *tmp;
    HASH_ITER(hh, namespaces, n, tmp) {
        HASH_DEL(namespaces, n);
        free(n);
    }
}

static int parse_one(const char *name, json_t *o, char *err, size_t errsize) {
    if (!json_is_object(o)) {
        snprintf(err, errsize, "namespace \"%s\": options must be an object", name);
        return -1;
    }
    ns_t *n = calloc(1, sizeof *n + strlen(name) + 1);
    if (!n) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    n->opt = defaults;
    strcpy(n->name, name);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (strcmp(k, "presence") == 0 && json_is_boolean(v)) {
            n->opt.presence = json_is_true(v);
        } else if (strcmp(k, "publish") == 0 && json_is_boolean(v)) {
            n->opt.publish = json_is_true(v);
        } else if (strcmp(k, "max_members") == 0 && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            n->opt.max_members = (long)json_integer_value(v);
        } else {
            snprintf(err, errsize,
                     "namespace \"%s\": unknown option or wrong type: \"%s\" (presence and "
                     "publish are booleans, max_members a non-negative integer)",
                     name, k);
            free(n);
            return -1;
        }
    }
    HASH_ADD_STR(namespaces, name, n);
    return 0;
}

int ns_load(const char *spec, char *err, size_t errsize) {
    ns_free();
    if (!*spec)
        return 0;
    json_error_t je;
    json_t *root = spec[0] == '@' ? json_load_file(spec + 1, JSON_REJECT_DUPLICATES, &je)
                                  : json_loads(spec, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        snprintf(err, errsize, "--namespaces must be a JSON object%s%s",
                 root ? "" : ": ", root ? "" : je.text);
        json_decref(root);
        return -1;
    }
    const char *name;
    json_t *o;
    int rc = 0;
    json_object_foreach(root, name, o) {
        if (!*name || strchr(name, ':')) {
            snprintf(err, errsize, "namespace \"%s\": a name is non-empty and holds no ':'", name);
            rc = -1;
        }
        if (rc || (rc = parse_one(name, o, err, errsize)))
            break;
    }
    json_decref(root);
    if (rc)
        ns_free();
    return rc;
}

const ns_options_t *ns_for(const char *topic) {
    if (!namespaces)
        return &defaults;
    size_t n = strcspn(topic, ":");
    ns_t *ns;
    HASH_FIND(hh, namespaces, topic, n, ns);
    return ns ? &ns->opt : &defaults;
}
