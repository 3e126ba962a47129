/* Private to presence/: the event packages and their pure helpers (for
 * tests/unit/test_event.c).  Each package is one pkg_*.c file exposing its
 * table; presence.c registers them in one list. */
#ifndef SD_PKGS_H
#define SD_PKGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "presence/event.h"
#include "server/proxy/dlgtrack.h"

/* presence (RFC 3856), pkg_presence.c */
extern const ev_package_t pkg_presence;
/* Hooks the location service (registration-derived presence). */
int pkg_presence_init(void);
void pkg_presence_shutdown(void);

/* Which document a watcher of the presence package sees. */
typedef enum {
	PRES_DOC_POLITE,       /* polite-block: neutral closed document */
	PRES_DOC_COMPOSED,     /* publications exist: their composition */
	PRES_DOC_REGISTERED,   /* no publication, bindings: open */
	PRES_DOC_UNREGISTERED, /* nothing: closed */
} pres_doc_kind_t;
pres_doc_kind_t pres_doc_choice(ev_auth_t auth, unsigned publications, unsigned bindings);
/* Appends the PIDF document a watcher with auth sees of resource (the
 * cached composition; a neutral closed one for polite-block).  The
 * resource list server uses it for its parts.  Returns 0 or -errno. */
int pres_document(const char *resource, ev_auth_t auth, buf_t *out);

/* presence.winfo (RFC 3857, RFC 3858), pkg_winfo.c */
extern const ev_package_t pkg_winfo;
int pkg_winfo_init(void);

typedef struct winfo_entry {
	const char *id;
	const char *uri;
	const char *status;  /* pending, active, waiting, terminated */
	const char *event;   /* subscribe, approved, deactivated, timeout, rejected, giveup, noresource */
	int64_t duration;    /* seconds subscribed so far */
	int64_t expiration;  /* seconds left (0 when terminated) */
} winfo_entry_t;

/* Appends an application/watcherinfo+xml document (RFC 3858 §4). */
int winfo_format(const char *resource, const char *package, unsigned version, bool full,
		 const winfo_entry_t *e, size_t n, buf_t *out);
/* Appends s escaped for XML text or attribute values. */
void xml_escape(buf_t *out, const char *s);

/* message-summary (RFC 3842), pkg_message_summary.c */
extern const ev_package_t pkg_message_summary;
/* Registers the package and hooks messaging's mailbox counts
 * (msg_on_mailbox_change); call before pub_init/ev_init, like the
 * PACKAGES table. */
int pkg_message_summary_init(void);

/* RFC 3458 §6.1 message-context classes, in RFC 3842 §5 line order. */
enum { MWI_VOICE, MWI_FAX, MWI_PAGER, MWI_MULTIMEDIA, MWI_TEXT, MWI_NONE, MWI_CLASSES };
#define MWI_MAX_BODY 4096 /* bytes of a PUBLISH body */
#define MWI_MAX_LINES 64

typedef struct mwi_counts {
	uint32_t new_msgs, old_msgs, new_urgent, old_urgent;
	bool urgent; /* the "(new/old)" urgent part was given */
} mwi_counts_t;

typedef struct mwi_summary {
	bool waiting;     /* Messages-Waiting: yes */
	unsigned present; /* bit i: class i had a summary line */
	mwi_counts_t c[MWI_CLASSES];
} mwi_summary_t;

/* Parses an application/simple-message-summary body (RFC 3842 §5)
 * strictly (see pkg_message_summary.c).  Returns 0, -EINVAL (malformed;
 * a short reason in why) or -EMSGSIZE (over MWI_MAX_BODY/MWI_MAX_LINES). */
int mwi_parse(const char *body, size_t len, mwi_summary_t *out, char *why, size_t whylen);
/* Adds the counts of from to into, class by class (saturating). */
void mwi_merge(mwi_summary_t *into, const mwi_summary_t *from);
/* Appends the NOTIFY body for account: Messages-Waiting (yes when s says
 * so or any class has new messages), Message-Account, one line per
 * present class.  Returns 0 or out->err. */
int mwi_format(const char *account, const mwi_summary_t *s, buf_t *out);

/* The resource list server (RFC 4662), rls.c: list subscriptions to the
 * presence of the buddies of an rls-services service. */
extern const ev_package_t pkg_rls_presence;
/* Builds the service table from the XCAP store (xstore_init first) and
 * hooks the framework (before ev_init, so stored list subscriptions are
 * recognised).  Returns 0 or -errno. */
int rls_init(bool (*is_local_domain)(const char *host));
void rls_shutdown(void);

/* One resource of a list NOTIFY. */
typedef struct rls_part {
	const char *uri, *name;
	const char *state;  /* RLMI instance state: active, pending, terminated */
	const char *reason; /* with terminated, or NULL */
	const char *body;   /* the resource's document, or NULL (no part) */
	size_t body_off, body_len;
	const char *body_type;
	char instance[12];
} rls_part_t;
/* Appends a multipart/related body (RFC 2387) of an RLMI document (RFC
 * 4662 §5) and one part per resource with a body.  The RLMI part's
 * Content-ID is <cid_base.version@rlmi> (the start parameter). */
int rls_format(const char *list_uri, const char *list_name, uint32_t version, bool full,
	       const rls_part_t *parts, size_t n, const char *boundary, const char *cid_base,
	       buf_t *out);

/* dialog (RFC 4235), pkg_dialog.c */
extern const ev_package_t pkg_dialog;
/* Registers the package and observes the proxy's dialog records. */
int pkg_dialog_init(void);
/* Appends an application/dialog-info+xml document (RFC 4235 §4) for
 * entity with the dialogs d[0..n). */
int dialoginfo_format(const char *entity, unsigned version, bool full, const dlg_record_t *d, size_t n,
		      buf_t *out);
/* The changes one subscription has not been told about, newest per dialog. */
typedef struct pending {
	dlg_record_t *v;
	size_t n, cap;
} pending_t;
/* Holds a deep copy of r unless a change of the same dialog with an equal
 * or higher sequence is held (older news).  Returns 1 held, 0 dropped,
 * -ENOMEM. */
int dialog_pending_merge(pending_t *p, const dlg_record_t *r);
void dialog_pending_clear(pending_t *p);

/* call-completion (RFC 6910), pkg_cc.c */
extern const ev_package_t pkg_cc;
/* Registers the package, observes dialog records, subscriptions and
 * registrations, and starts the queue expiry (queue_expires seconds). */
int pkg_cc_init(uv_loop_t *loop, unsigned queue_expires);
void pkg_cc_shutdown(void);
/* Appends an application/call-completion body: cc-state,
 * cc-service-retention, and cc-URI when given. */
int cc_format(const char *state, const char *cc_uri, buf_t *out);
/* Parses a PUBLISH body: exactly one cc-state, "suspended" or "queued";
 * other lines ignored; at most 1 KiB.  Returns 0, -EINVAL or -EMSGSIZE
 * (a reason in why). */
int cc_parse_state(const char *body, size_t len, bool *suspended, char *why, size_t whylen);

#endif
