/* The XCAP document store (RFC 4825 §6): every user's XML documents
 * (resource-lists, rls-services, ...) kept whole in PostgreSQL (table
 * xcap_documents, schema/005_xcap.sql) and in memory.
 *
 * Readers (the XCAP server's GET, the resource list server) see only
 * committed documents: xstore_put/xstore_delete change the in-memory copy
 * when the write has committed, then call the done callback and the
 * change observers.  One write per document is in flight at a time; a
 * second one is refused with -EBUSY (the XCAP server answers 503 with
 * Retry-After), so a conditional request is always checked against the
 * state it will replace.
 *
 * Other writers (simplectl buddies, another simpled on the same database)
 * announce changes on channel simpled_xcap (payload "auid owner name",
 * sent by a trigger in the same transaction); the store re-reads that
 * document and calls the observers.
 *
 * owner is the user's AOR without scheme, lower-cased host
 * ("alice@example.test"); auid is the application usage
 * ("resource-lists"); name is the document name ("index"). */
#ifndef SD_XCAP_STORE_H
#define SD_XCAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define XSTORE_MAX_DOC (1u << 20) /* bytes of one document */
#define XSTORE_MAX_NAME 256       /* bytes of auid, owner or name */

typedef struct xstore_doc {
	const char *auid, *owner, *name;
	const char *body; /* NUL-terminated; len bytes */
	size_t len;
	const char *etag; /* opaque, without quotes */
} xstore_doc_t;

/* Loads every document (synchronously, start-up only) and LISTENs on
 * simpled_xcap.  Returns 0 or -errno. */
int xstore_init(uv_loop_t *loop, const char *conninfo);
void xstore_shutdown(void);

/* The committed document, or NULL.  Borrowed: valid until the next write
 * of that document completes (copy what you keep across loop turns). */
const xstore_doc_t *xstore_get(const char *auid, const char *owner, const char *name);

/* Calls fn for every document of one application usage (owner NULL: of
 * every user). */
void xstore_foreach(const char *auid, const char *owner,
		    void (*fn)(const xstore_doc_t *doc, void *arg), void *arg);

/* status: 0 committed (etag: the new ETag, NULL after a delete),
 * -EIO/-ENOTCONN/-EAGAIN database trouble (nothing changed). */
typedef void (*xstore_done_cb)(void *arg, int status, const char *etag);

/* Stores body (copied) as the new version of the document.  Returns 0
 * (done runs later, exactly once), -EBUSY (a write of this document is in
 * flight), -EMSGSIZE, -EINVAL, or a database error (-ENOTCONN, -EAGAIN);
 * on error done never runs. */
int xstore_put(const char *auid, const char *owner, const char *name, const char *body,
	       size_t len, xstore_done_cb done, void *arg);
/* Deletes the document (-ENOENT when there is none). */
int xstore_delete(const char *auid, const char *owner, const char *name, xstore_done_cb done,
		  void *arg);

/* Observers, called after a document changed (committed here or
 * announced by another writer); doc is NULL when it was deleted.  At most
 * 4. */
typedef void (*xstore_change_cb)(void *arg, const char *auid, const char *owner,
				 const char *name, const xstore_doc_t *doc);
int xstore_on_change(xstore_change_cb cb, void *arg);

/* A fresh ETag (pure; unit tests, simplectl). */
void xstore_new_etag(char *out, size_t outlen);

#endif
