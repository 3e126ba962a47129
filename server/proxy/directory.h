/* The user directory: which users exist (404 versus 480 for a call), and
 * each user's display name and photo URL (`simplectl user set USER
 * --name ... --photo ...`, columns users.display_name and users.photo_url).
 *
 * The proxy asserts the identity of an authenticated local caller to the
 * callee (RFC 3325 §9.1 P-Asserted-Identity, with the display name) and
 * adds the photo as Call-Info: <url>;purpose=icon (RFC 3261 §20.9) when
 * the request has no icon of its own.  dir_identity_headers() builds those
 * lines for any module that forwards requests (INVITE here, MESSAGE in
 * messaging/).
 *
 * Held in memory: loaded synchronously by dir_init (start-up), then kept
 * current through LISTEN simpled_users (simplectl announces every change
 * of a user there, payload user@domain): the server re-reads that row
 * asynchronously.  Lookups never wait. */
#ifndef SD_PROXY_DIRECTORY_H
#define SD_PROXY_DIRECTORY_H

#include <stdbool.h>

#include "server/base/buf.h"
#include "server/sip/sipmsg.h"

typedef struct dir_user {
	const char *aor;          /* "sip:user@domain", domain lower-cased */
	const char *display_name; /* NULL when unset */
	const char *photo_url;    /* NULL when unset */
} dir_user_t;

/* Loads the users (conninfo: synchronous, start-up only; NULL skips the
 * load, for tests), prepares the refresh statement and LISTENs.  Returns
 * 0 or -errno. */
int dir_init(const char *conninfo);
/* Call after the database pool closed (no refresh can be in flight). */
void dir_shutdown(void);

/* The entry of an AOR, or NULL when no such user.  Borrowed: valid until
 * the loop runs again (a refresh may replace it). */
const dir_user_t *dir_find(const char *aor);

/* In-memory updates (the NOTIFY path and tests).  name/photo may be NULL. */
int dir_set(const char *aor, const char *display_name, const char *photo_url);
int dir_remove(const char *aor);
unsigned long dir_count(void);

/* Appends the identity lines for a request from the local user aor:
 * "P-Asserted-Identity: \"Name\" <sip:user@domain>\r\n" (always: the
 * caller drops any P-Asserted-Identity the request carried, since only
 * we can assert it), and "Call-Info: <photo>;purpose=icon\r\n" when the
 * user has a photo and req carries no Call-Info with purpose=icon.
 * Returns 0, -ENOENT (no such user: nothing appended) or out->err. */
int dir_identity_headers(const sipmsg_t *req, const char *aor, buf_t *out);

/* Whether a display name / photo URL can be put in a header as is
 * (printable, no CR/LF; a URL also without spaces, '<', '>' or '"'). */
bool dir_name_ok(const char *name);
bool dir_url_ok(const char *url);

#endif
