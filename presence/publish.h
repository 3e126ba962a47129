/* RFC 3903 event state publication for every package with publish_types:
 *
 *   PUBLISH, body, no SIP-If-Match        initial   -> 200, SIP-ETag, Expires
 *   PUBLISH, SIP-If-Match, no body        refresh   -> 200, new SIP-ETag
 *   PUBLISH, SIP-If-Match, body           modify    -> 200, new SIP-ETag
 *   PUBLISH, SIP-If-Match, Expires: 0     remove    -> 200
 *   unknown / expired entity-tag          412 Conditional Request Failed
 *
 * Publications live in memory (per event and resource, in creation order)
 * and in table presence_publications, written in batches; the 200 is sent
 * only after the row committed.  The document is stored as sent.  A 1 s
 * timer expires publications (and their removal is notified); every
 * change calls ev_resource_changed() once committed. */
#ifndef SD_PUBLISH_H
#define SD_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "presence/event.h"

typedef struct pub_options {
	unsigned min_expires, max_expires, default_expires;
	unsigned max_per_resource; /* publications per (event, resource); 0 = unlimited */
	unsigned retry_after;
	bool auth; /* authenticate the publisher (with authn enabled) */
	bool (*is_local_domain)(const char *host);
	const char *node_name;
} pub_options_t;

/* Loads unexpired publications synchronously (start-up only; packages
 * registered first). */
int pub_init(uv_loop_t *loop, const pub_options_t *opts, const char *conninfo);
void pub_stop(void);
void pub_shutdown(void);

/* Router handler for PUBLISH. */
void pub_handle_publish(txn_t *t, sipmsg_t *req);

/* One live publication (borrowed, valid during the callback). */
typedef struct pub_doc {
	const char *etag;
	const char *ctype;
	const char *body;
	size_t len;
	int64_t created_us, modified_us;
	int64_t expires_at;
} pub_doc_t;

/* Whether (event, resource) has a change applied in memory that is not
 * committed yet; when it returns true, ev_resource_changed() is called
 * once the last such change commits or is undone. */
bool pub_hold_notify(const char *event, const char *resource);

/* Number of live publications of (event, resource). */
unsigned pub_count(const char *event, const char *resource);
/* Calls fn for each, in creation order. */
void pub_foreach(const char *event, const char *resource, void (*fn)(const pub_doc_t *d, void *arg),
		 void *arg);

#endif
