/* Dialog records of the calls the proxy routes for local users, for the
 * dialog event package (RFC 4235) and call completion (RFC 6910) on the
 * presence side, which registers an observer (dlg_on_change) -- the proxy
 * never calls into presence/, so the layering stays acyclic.
 *
 *   INVITE forked to a local callee      -> recipient record  "trying"
 *     (and, when the caller is local,    -> initiator record  "trying")
 *   1xx without To tag                   -> "proceeding"
 *   1xx with To tag                      -> "early"
 *   2xx                                  -> "confirmed"
 *   non-2xx final sent upstream          -> "terminated" (rejected, or
 *                                           cancelled after a CANCEL)
 *   BYE (either side)                    -> "terminated" (local-bye / remote-bye)
 *
 * One group per call (Call-ID + the caller's From tag) holds the callee's
 * record and, for a local caller, the caller's.  States only move forward
 * (dlg_state_advance): a provisional that arrives after the 2xx or after
 * termination changes nothing, and every accepted change gets the next
 * value of one process-wide sequence, so observers can drop anything
 * older than what they already hold.
 *
 * This is the only per-call state the proxy keeps, and routing never
 * reads it: in-dialog requests still route by their Route set alone, and
 * after a restart (records are memory-only) a BYE routes as before; the
 * lamps simply show no call until the next one.  A record that never sees
 * its end (a lost BYE) does not stay busy forever: early dialogs end after
 * DLG_EARLY_MAX_S, confirmed ones after DLG_CONFIRMED_MAX_S (event
 * "timeout"); terminated records linger DLG_LINGER_S so a late response
 * finds them and is ignored instead of starting a new record. */
#ifndef SD_DLGTRACK_H
#define SD_DLGTRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "server/sip/sipmsg.h"

#define DLG_EARLY_MAX_S 200          /* past Timer C (181 s): the INVITE is over */
#define DLG_CONFIRMED_MAX_S (12 * 3600)
#define DLG_LINGER_S 32              /* 64*T1: late retransmissions are over */
#define DLG_MAX_RECORDS 200000       /* beyond this, new calls are not tracked */

typedef enum dlg_state {
	DLG_TRYING = 0,
	DLG_PROCEEDING,
	DLG_EARLY,
	DLG_CONFIRMED,
	DLG_TERMINATED,
} dlg_state_t;

/* One side's view of a dialog (borrowed strings, valid during the
 * callback or until the record changes). */
typedef struct dlg_record {
	const char *id;            /* unique in this process; the XML dialog id */
	const char *aor;           /* the local user whose dialog this is */
	const char *peer_aor;      /* the other party's AOR when it is local, else "" */
	bool initiator;            /* the user placed the call */
	const char *call_id;
	const char *local_tag;     /* this user's tag ("" while unknown) */
	const char *remote_tag;
	const char *local_uri;     /* the user's identity in the call (From or To URI) */
	const char *remote_uri;    /* the other party's */
	const char *remote_target; /* the other party's Contact ("" while unknown) */
	bool cc_call;              /* the INVITE's Request-URI has an m parameter (an RFC 6910
	                            * CC call placed to a cc-URI) */
	dlg_state_t state;
	const char *event;         /* when terminated: cancelled, rejected, local-bye,
	                            * remote-bye, timeout; else NULL */
	int code;                  /* the final response that ended or confirmed it, or 0 */
	bool rang;                 /* a provisional above 100 was seen */
	uint64_t seq;              /* of its last change; grows across all records */
	int64_t created;           /* unix seconds */
} dlg_record_t;

/* Starts tracking (the expiry timer).  Returns 0 or -errno. */
int dlg_init(uv_loop_t *loop);
void dlg_shutdown(void);

/* --- the proxy's hooks -------------------------------------------------- */

/* An initial INVITE is being forked to callee_aor (a local user);
 * caller_aor is the caller's AOR when it is local, else NULL. */
void dlg_track_invite(const sipmsg_t *req, const char *callee_aor, const char *caller_aor);
/* A provisional (101-199) or 2xx response relayed upstream. */
void dlg_track_response(const sipmsg_t *resp, int code);
/* The final non-2xx answer to the INVITE req is being sent upstream. */
void dlg_track_final(const sipmsg_t *req, int code, bool cancelled);
/* A BYE is routed. */
void dlg_track_bye(const sipmsg_t *req);

/* --- the observers' side ------------------------------------------------ */

/* Called after every accepted change (at most 4 observers). */
typedef void (*dlg_change_cb)(void *arg, const dlg_record_t *r);
int dlg_on_change(dlg_change_cb cb, void *arg);
/* Calls fn for every record of aor, oldest first. */
void dlg_foreach(const char *aor, void (*fn)(const dlg_record_t *r, void *arg), void *arg);
/* Records of aor that are not terminated. */
unsigned dlg_active_count(const char *aor);
/* Records held, for logs and benchmarks. */
unsigned long dlg_record_count(void);

/* --- pure helpers (unit-tested) ----------------------------------------- */

/* Whether a record in state from may move to state to: forward only,
 * terminated is final, early may be re-entered (another To tag). */
bool dlg_state_advance(dlg_state_t from, dlg_state_t to);
/* "trying", "proceeding", "early", "confirmed", "terminated". */
const char *dlg_state_name(dlg_state_t s);

#endif
