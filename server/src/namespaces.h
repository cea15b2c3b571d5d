/* namespaces.h -- per-namespace topic options (--namespaces).
 *
 * A topic's namespace is its name up to the first ':' ("room:42" is in
 * "room"; a topic without ':' is its own namespace), as in Phoenix's
 * "room:*" channel routes. Options, all optional:
 *   presence     true/false: overrides --presence-topics for the namespace;
 *   publish      false: only connections whose token grants publishing on
 *                the topic (its "publish" claim) may push chat messages;
 *   max_members  subscribers one topic may have on this node (0: no limit).
 * The same options apply in every tenant. */
#ifndef PARLEY_NAMESPACES_H
#define PARLEY_NAMESPACES_H

#include <stddef.h>

typedef struct ns_options {
    int presence;      /* -1: as --presence-topics; 0 off; 1 on */
    int publish;       /* 1: members publish; 0: granted users only */
    long max_members;  /* 0: no limit */
} ns_options_t;

/* Parses --namespaces: a JSON object {"NAME": {options}, ...}, or "@PATH" of
 * a file holding one; "" for none. 0, or -1 with a message in err. */
int ns_load(const char *spec, char *err, size_t errsize);
void ns_free(void);

/* The options of the namespace of `topic` (a client-visible name). Topics
 * of namespaces not configured get the defaults (-1, 1, 0). */
const ns_options_t *ns_for(const char *topic);

#endif
