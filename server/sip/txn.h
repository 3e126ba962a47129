/* RFC 3261 §17 transactions on libuv timers.
 *
 * Server transactions absorb retransmitted requests (the last response is
 * sent again) and retransmit final INVITE responses over UDP (timers G, H,
 * I); client transactions retransmit requests over UDP and time out
 * (timers E, F, K for non-INVITE).  Lookup is by top-Via branch (plus
 * sent-by and method) in a hash table: O(1) per message whatever the number
 * of transactions in flight.
 *
 * Timers of fixed duration (F, H, J: 64*T1; I, K: T4; the server-side
 * guard against a handler that never answers) are kept in FIFO lists swept
 * by one libuv timer, because every member of a list has the same duration
 * and so the lists stay sorted: tens of thousands of completed
 * transactions cost no timer handles.  Retransmissions (E, G, A) work the
 * same way: one FIFO list per interval in use (T1, 2*T1, ..., T2), so a
 * transaction never owns a timer handle.
 *
 * Objects are reference counted: the transaction table holds one reference
 * until the transaction terminates; a handler that answers later (after a
 * database query) takes its own with txn_ref() and drops it with
 * txn_unref(). */
#ifndef SD_TXN_H
#define SD_TXN_H

#include <stdbool.h>
#include <uv.h>

#include "server/sip/sipmsg.h"

typedef struct txn txn_t;

typedef struct txn_timers {
	unsigned t1_ms; /* RTT estimate, default 500 */
	unsigned t2_ms; /* max retransmit interval, default 4000 */
	unsigned t4_ms; /* max message lifetime in the network, default 5000 */
} txn_timers_t;

int txn_init(uv_loop_t *loop, const txn_timers_t *timers);
/* Terminates every transaction (without sending anything) and closes the
 * sweep timer; call at shutdown. */
void txn_shutdown(void);

typedef enum {
	TXN_MATCH_NEW,       /* a new server transaction; it owns msg now */
	TXN_MATCH_ABSORBED,  /* retransmission or ACK of a non-2xx: absorbed */
	TXN_MATCH_STRAY_ACK, /* ACK matching no transaction (ACK of a 2xx) */
} txn_match_t;

/* Matches an incoming request (RFC 3261 §17.2.3).  For TXN_MATCH_NEW, *out
 * is the new transaction (borrowed: the table owns it; take a reference
 * to keep it past the call) and the transaction owns msg.  For the other
 * results the caller still owns msg. */
txn_match_t txn_server_match(sipmsg_t *msg, txn_t **out);

/* The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2), or
 * NULL.  Borrowed. */
txn_t *txn_find_invite(const sipmsg_t *cancel);

/* The request that created a server transaction (borrowed; valid while
 * the caller holds a reference and the transaction has not sent a final
 * response). */
sipmsg_t *txn_request(txn_t *t);
/* The To tag used in this transaction's responses. */
const char *txn_to_tag(const txn_t *t);
/* Whether a final response has been sent (further replies are ignored). */
bool txn_answered(const txn_t *t);

/* Sends a response built by sipmsg_build_response (with this
 * transaction's To tag).  A final response moves the transaction to
 * Completed (or terminates it); later calls return -EALREADY.  Returns 0
 * or a negative errno. */
int txn_reply(txn_t *t, int code, const char *reason, const char *extra,
	      const char *ctype, const char *body, size_t bodylen);

/* Sends a response that was built elsewhere -- a response relayed by a
 * proxy (RFC 3261 §16.7 step 8), our Via already removed -- on server
 * transaction t and keeps it as the last response for retransmissions,
 * exactly like txn_reply.  code is the status in bytes.  The bytes are
 * copied.  A 2xx to INVITE moves the transaction to Accepted (RFC 6026
 * §7.1): retransmitted INVITEs are absorbed, further 2xx (other forks,
 * §16.7 step 5) are still sent, an ACK matching its branch is passed on
 * as a stray ACK, and it terminates after 64*T1 (Timer L).  Returns 0,
 * -EALREADY (a final was sent and this is not another 2xx to INVITE),
 * -EINVAL or -ENOMEM. */
int txn_reply_raw(txn_t *t, int code, const char *bytes, size_t len);

void txn_ref(txn_t *t);
void txn_unref(txn_t *t);

/* --- client transactions ------------------------------------------------ */

/* Called exactly once per client transaction with the final response
 * (borrowed) or with resp == NULL and code 408 (timer F) or 503 (transport
 * error).  Provisional responses are reported with final == false. */
typedef void (*txn_response_cb)(void *arg, const sipmsg_t *resp, int code, bool final);

/* Writes a new RFC 3261 branch ("z9hG4bK" + random) into out (>= 40 bytes). */
void txn_new_branch(char *out, size_t outlen);

/* Starts a client transaction: sends the request bytes (whose top Via
 * carries branch) to dst, retransmits over UDP (timer E, or A for
 * INVITE), and reports the outcome through cb (timeout: F, or B).  For
 * INVITE, a 3xx-6xx final is ACKed here (and again for each
 * retransmission during Timer D); a 2xx ends the transaction and its ACK
 * is the caller's (RFC 3261 §13.2.2.4).  The bytes are copied.  Returns 0
 * (cb will run exactly once with final == true) or a negative errno (cb
 * never runs). */
int txn_client_start(const tp_peer_t *dst, const char *branch, const char *method,
		     const char *bytes, size_t len, txn_response_cb cb, void *arg);

/* txn_client_start with flags.  TXN_LIGHT_RESPONSE: the callback reads
 * only resp->status, resp->reason, resp->method, resp->branch, resp->cseq
 * and resp->src, never resp->m, so the responses of this transaction can
 * be matched by txn_client_match_raw without a full parse (a relay's
 * answers cost a scan, not a libosip2 parse and free).  Not for INVITE
 * (-EINVAL): its ACK needs the parsed response. */
#define TXN_LIGHT_RESPONSE 1u

/* A branch for a TXN_LIGHT_RESPONSE transaction: the RFC 3261 cookie, a
 * marker ("sdL") and random hex.  txn_client_match_raw looks for the
 * marker before scanning, so the answers of every other transaction
 * (INVITE, proxied requests) cost it one memmem and take the full path
 * as before.  A light transaction with another branch still works; its
 * answers are only parsed fully. */
#define TXN_LIGHT_BRANCH_MARK "z9hG4bKsdL"
void txn_new_light_branch(char *out, size_t outlen);
int txn_client_start_flags(const tp_peer_t *dst, const char *branch, const char *method,
			   const char *bytes, size_t len, txn_response_cb cb, void *arg,
			   unsigned flags);

/* Delivers an incoming response to its client transaction.  Returns true
 * when a transaction took it.  resp->status is its code. */
bool txn_client_match(const sipmsg_t *resp);

/* Delivers a response straight from its bytes when it is in the plain
 * shape (sipmsg_scan_response) and matches a TXN_LIGHT_RESPONSE
 * transaction; the callback gets a view with m == NULL.  Returns false
 * otherwise, and the caller parses the message and goes on as before
 * (txn_client_match, stray responses): so every response that is not
 * one of those takes exactly the old path. */
bool txn_client_match_raw(const char *data, size_t len, const tp_peer_t *src,
			  const sip_limits_t *lim);

/* Counts for tests and benchmarks. */
typedef struct txn_stats {
	unsigned long server_live, client_live;
	unsigned long retransmissions_absorbed;
} txn_stats_t;
void txn_get_stats(txn_stats_t *out);

#endif
