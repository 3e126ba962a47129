/* The router: one row per SIP method, plus the checks every request goes
 * through before its handler (RFC 3261 §8.2 and §16.3): Max-Forwards,
 * Require/Proxy-Require, unknown methods.  OPTIONS addressed to us is
 * answered here with our capabilities (RFC 3261 §11). */
#ifndef SD_ROUTER_H
#define SD_ROUTER_H

#include "server/sip/txn.h"

/* Handles a new server transaction: must answer t exactly once (possibly
 * later, holding a reference).  req is borrowed from t. */
typedef void (*router_cb)(txn_t *t, sipmsg_t *req);

int router_add(const char *method, router_cb cb);
/* Adds an option tag we support (Supported header, Require checks). */
int router_add_supported(const char *option_tag);
/* Adds an event package name to Allow-Events (RFC 6665 §8.2.2). */
int router_add_event(const char *package);
/* Adds a body type to the Accept header of OPTIONS. */
int router_add_accept(const char *mime);

void router_dispatch(txn_t *t, sipmsg_t *req);

/* An ACK that matched no transaction (the ACK of a 2xx): the proxy takes
 * it when present; otherwise it is dropped. */
typedef void (*router_ack_cb)(sipmsg_t *ack);
void router_set_stray_ack(router_ack_cb cb);
void router_stray_ack(sipmsg_t *ack);

/* "INVITE, ACK, ..." — the methods with handlers. */
const char *router_allow(void);
const char *router_allow_events(void);
const char *router_supported(void);

#endif
