/* The pure text work of a stateful proxy (RFC 3261 §16.6, §16.7, §9.1):
 * rewriting a request for one branch, stripping our Via from a response,
 * building the CANCEL of a branch, and choosing the best final response.
 *
 * Everything works on message text as libosip2's osip_message_to_str()
 * writes it (one "Name: value" line per header, CRLF line ends) but also
 * accepts compact names, comma-joined values and LF line ends, so the
 * functions can be tested on hand-written messages.  Nothing here touches
 * a socket, a timer or the database.  The body is copied byte for byte
 * (SDP is relayed untouched). */
#ifndef SD_PROXY_FWD_H
#define SD_PROXY_FWD_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/buf.h"

/* How to rewrite a request for one branch (§16.6 steps 2-8). */
typedef struct fwd_req {
	const char *ruri;          /* new Request-URI, or NULL to keep it */
	const char *via;           /* our Via value ("SIP/2.0/UDP 1.2.3.4:5060;branch=..."),
	                            * put on top of the existing ones */
	unsigned pop_routes;       /* leading Route values to remove (ours, §16.4) */
	const char *routes_first;  /* Route value(s) to put before the remaining ones
	                            * (a binding's Path, RFC 3327 §5.3), or NULL */
	const char *record_route;  /* Record-Route value(s) to put on top (§16.6 step 4), or NULL */
	const char *extra;         /* complete header lines (each ending in CRLF) to add, or NULL */
	bool drop_proxy_auth;      /* remove Proxy-Authorization (consumed here, §22.3) */
	bool drop_identity;        /* remove P-Asserted-Identity (we assert our own) */
	bool strict_ruri_pop;      /* the previous hop was a strict router (§16.4): the
	                            * Request-URI becomes the last Route value, which is removed */
} fwd_req_t;

/* Appends the rewritten request to out: request line (method kept, URI
 * replaced), our Via, Max-Forwards decremented (70 when absent; the
 * caller has already refused 0), Routes popped or prepended, Record-Route
 * added, the rest unchanged.  Returns 0, -EINVAL (not a request, no
 * header block) or out->err. */
int fwd_request(const char *msg, size_t len, const fwd_req_t *o, buf_t *out);

/* Appends a response with its top Via value removed (§16.7 step 3).  When
 * new_code is not 0 the status line is replaced by "SIP/2.0 new_code
 * reason" (the 503 -> 500 rule of §16.7 step 6).  Returns 0, -EINVAL
 * (not a response, or only one Via: nothing to relay to) or out->err. */
int fwd_response(const char *msg, size_t len, int new_code, const char *reason, buf_t *out);

/* Appends the CANCEL of a forwarded INVITE (§9.1): the same
 * Request-URI, top Via (ours, so the same branch), Route, From, To,
 * Call-ID and CSeq number.  Returns 0, -EINVAL or out->err. */
int fwd_cancel(const char *invite, size_t len, buf_t *out);

/* The status code of a response text, or -EINVAL. */
int fwd_status(const char *msg, size_t len);

/* Index in codes[0..n) of the response to forward upstream when every
 * branch has finished without a 2xx (§16.7 step 6): a 6xx if there is
 * one; else the lowest class; within 4xx, one that lets the client retry
 * (401, 407, 415, 420, 484) first; then the lowest code.  Codes of 0 or
 * below 300 are skipped.  -1 when none qualifies (the caller answers 408,
 * §16.7 step 6 "no responses"). */
int fwd_best(const int *codes, size_t n);

/* The code sent upstream for a chosen downstream code: 503 becomes 500
 * (§16.7 step 6: the client must not think *we* are overloaded). */
int fwd_upstream_code(int code);

/* Calls fn for each comma-separated value of a header value, honouring
 * quotes and <...>; values are trimmed.  Stops (returning the callback's
 * value) when fn returns non-zero.  Returns 0 otherwise. */
int fwd_split_values(const char *value, size_t len,
		     int (*fn)(void *arg, const char *v, size_t vlen), void *arg);

#endif
