/* Buddy lists as documents: RFC 4826 resource-lists and rls-services,
 * read and edited with libxml2 through the safe parser (pidf.h).  Pure:
 * no loop, no database; the server (rls.c), simplectl and the unit tests
 * share it.
 *
 * A service of an rls-services document names its resources either
 * inline (<list>) or by reference (<resource-list>, an XCAP URI of a list
 * in a resource-lists document, RFC 4826 §4.1).  References are resolved
 * against the owner's own documents only (rl_ref_parse): the node
 * selector may name a list by position or by name attribute, nested to
 * any depth; anything else resolves to no resources (logged by the
 * caller).  Nested lists are flattened into one list of resources, each
 * URI once, in document order: RFC 4662 allows nested multipart, but
 * clients render one buddy list either way. */
#ifndef SD_BUDDYLIST_H
#define SD_BUDDYLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/buf.h"

#define RL_NS  "urn:ietf:params:xml:ns:resource-lists"
#define RLS_NS "urn:ietf:params:xml:ns:rls-services"
#define RL_MAX_ENTRIES 1000 /* resources of one service */
#define RL_MAX_PATH 8       /* nesting of a referenced list */
#define RL_NAME_MAX 256

typedef struct rl_entry {
	char *uri;
	char *name; /* display-name, or NULL */
} rl_entry_t;

typedef struct rl_service {
	char *uri;        /* sip:alice-friends@example.test */
	char *list_ref;   /* <resource-list> value, or NULL */
	rl_entry_t *entries; /* inline <list>, flattened */
	size_t n;
	bool presence;    /* packages absent or naming presence */
} rl_service_t;

void rl_entries_free(rl_entry_t *v, size_t n);
void rl_services_free(rl_service_t *v, size_t n);

/* Parses an rls-services document.  Returns 0 (services in *out, *n),
 * -EINVAL (malformed or not rls-services: reason in why), -EMSGSIZE,
 * -E2BIG, -ENOMEM. */
int rls_services_parse(const char *xml, size_t len, rl_service_t **out, size_t *n, char *why,
		       size_t whylen);

/* A parsed <resource-list> reference:
 * http(s)://host/xcap-root/resource-lists/users/XUI/DOC/~~/resource-lists/list[@name="a"]/list[2]
 * owner "alice@example.test", doc "index", and one step per list: a name
 * (name[i], pos[i] == 0) or a 1-based position (pos[i] > 0). */
typedef struct rl_ref {
	char owner[RL_NAME_MAX];
	char doc[RL_NAME_MAX];
	char name[RL_MAX_PATH][RL_NAME_MAX];
	unsigned pos[RL_MAX_PATH];
	unsigned depth; /* 0: every list of the document */
} rl_ref_t;
int rl_ref_parse(const char *ref, rl_ref_t *out);

/* The resources of the lists selected by ref (owner/doc ignored) in a
 * resource-lists document, flattened.  -ENOENT when the path selects
 * nothing. */
int rl_list_entries(const char *xml, size_t len, const rl_ref_t *ref, rl_entry_t **out,
		    size_t *n);

/* The name attribute of the pos-th (1-based) top-level list ("" when it
 * has none).  -ENOENT when there is no such list. */
int rl_list_name(const char *xml, size_t len, unsigned pos, char *out, size_t outlen);

/* Edits for `simplectl buddies`: xml NULL means no document yet.  The new
 * document is appended to out.  add: -EEXIST when the list already has
 * that URI; del: -ENOENT when it has not. */
int rl_doc_add_entry(const char *xml, size_t len, const char *list, const char *uri,
		     const char *name, buf_t *out);
int rl_doc_del_entry(const char *xml, size_t len, const char *list, const char *uri,
		     buf_t *out);
/* Adds a service uri whose resources are the list named list_ref (an
 * XCAP URI); -EEXIST when the service exists. */
int rls_doc_add_service(const char *xml, size_t len, const char *uri, const char *list_ref,
			buf_t *out);

/* The XCAP URI of list `list` of owner's resource-lists document "index"
 * (root: "http://127.0.0.1:8080/xcap-root"). */
int rl_list_ref(const char *root, const char *owner, const char *list, buf_t *out);

#endif
