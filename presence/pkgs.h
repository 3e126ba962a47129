/* Private to presence/: the event packages and their pure helpers (for
 * tests/unit/test_event.c).  Each package is one pkg_*.c file exposing its
 * table; presence.c registers them in one list. */
#ifndef SD_PKGS_H
#define SD_PKGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence/event.h"

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

#endif
