/* The presence event package (RFC 3856) on the event framework:
 *   - NOTIFY bodies are application/pidf+xml (RFC 3863);
 *   - PUBLISH bodies (RFC 3903) are parsed safely and validated by
 *     pidf_xml_parse + pidf_validate: not well-formed -> 400, another
 *     entity -> 403, too large -> 413;
 *   - the document a watcher sees: the composition of every current
 *     publication (pidf_compose, RFC 4479 §8.3); with no publication, the
 *     state derived from registrations: open while the presentity has a
 *     binding (with the best contact), closed when it has none
 *     (pidf_basic_doc) -- a PUBLISH takes precedence;
 *   - authorization through rules.c; polite-blocked watchers see a
 *     neutral closed document.
 * Composed documents are cached per presentity until its state changes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pidf.h"
#include "presence/pkgs.h"
#include "presence/publish.h"
#include "presence/rules.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/registrar/location.h"

#define CACHE_MAX 20000

static const char *const TYPES[] = {"application/pidf+xml", NULL};

typedef struct cached {
	hnode_t node;
	char *resource;
	char *doc;
	size_t len;
} cached_t;

static struct {
	htable_t cache;
	bool started;
} PP;

pres_doc_kind_t pres_doc_choice(ev_auth_t auth, unsigned publications, unsigned bindings)
{
	if (auth == EV_AUTH_POLITE)
		return PRES_DOC_POLITE;
	if (publications)
		return PRES_DOC_COMPOSED;
	return bindings ? PRES_DOC_REGISTERED : PRES_DOC_UNREGISTERED;
}

static bool cache_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, cached_t, node)->resource, key) == 0;
}

static void cache_free(cached_t *c)
{
	free(c->resource);
	free(c->doc);
	free(c);
}

static void cache_free_node(hnode_t *n, void *arg)
{
	(void)arg;
	htable_remove(&PP.cache, n);
	cache_free(container_of(n, cached_t, node));
}

static void changed(const char *resource)
{
	if (!PP.started)
		return;
	hnode_t *n = htable_find(&PP.cache, hash_str(resource), cache_eq, resource);
	if (n) {
		htable_remove(&PP.cache, n);
		cache_free(container_of(n, cached_t, node));
	}
}

struct collect {
	pidf_source_t *v;
	size_t n, cap;
};

static void collect_pub(const pub_doc_t *d, void *arg)
{
	struct collect *c = arg;
	if (c->n == c->cap)
		return;
	c->v[c->n].data = d->body;
	c->v[c->n].len = d->len;
	c->v[c->n].modified = d->modified_us;
	c->v[c->n].etag = d->etag;
	c->n++;
}

static int compose(const char *resource, buf_t *out)
{
	unsigned npub = pub_count(pkg_presence.name, resource);
	const loc_aor_t *a = loc_find(resource);
	pres_doc_kind_t k = pres_doc_choice(EV_AUTH_ALLOW, npub, a ? a->count : 0);
	if (k == PRES_DOC_COMPOSED) {
		struct collect c = {calloc(npub, sizeof(pidf_source_t)), 0, npub};
		if (!c.v)
			return -ENOMEM;
		pub_foreach(pkg_presence.name, resource, collect_pub, &c);
		size_t before = out->len;
		int err = pidf_compose(resource, c.v, c.n, out);
		free(c.v);
		if (err == 0)
			return 0;
		/* No usable publication: fall back to registrations. */
		LOGW("presence", "composing %s failed (%d); using registration state", resource, err);
		out->len = before;
		k = pres_doc_choice(EV_AUTH_ALLOW, 0, a ? a->count : 0);
	}
	if (k == PRES_DOC_REGISTERED)
		return pidf_basic_doc(resource, true, "reg", a->bindings->contact, out);
	return pidf_basic_doc(resource, false, "reg", NULL, out);
}

int pres_document(const char *resource, ev_auth_t auth, buf_t *out)
{
	if (auth == EV_AUTH_POLITE)
		return pidf_basic_doc(resource, false, "p0", NULL, out);
	hnode_t *n = htable_find(&PP.cache, hash_str(resource), cache_eq, resource);
	if (n) {
		cached_t *c = container_of(n, cached_t, node);
		return buf_append(out, c->doc, c->len);
	}
	buf_t doc;
	buf_init(&doc, 0);
	int err = compose(resource, &doc);
	if (err || doc.err) {
		buf_free(&doc);
		return err ? err : doc.err;
	}
	buf_append(out, doc.data, doc.len);
	if (PP.cache.count >= CACHE_MAX)
		htable_foreach(&PP.cache, cache_free_node, NULL);
	cached_t *c = calloc(1, sizeof *c);
	if (c && (c->resource = strdup(resource)) != NULL) {
		c->doc = buf_steal(&doc, &c->len);
		htable_insert(&PP.cache, &c->node, hash_str(resource));
	} else {
		free(c);
	}
	buf_free(&doc);
	return out->err;
}

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	*ctype = TYPES[0];
	return pres_document(ev_sub_resource(sub), ev_sub_auth(sub), out);
}

static int on_publish(const char *resource, const char *ctype, const char *body, size_t len,
		      char *why, size_t whylen)
{
	(void)ctype;
	xmlDocPtr doc = NULL;
	int err = pidf_xml_parse(body, len, NULL, &doc, why, whylen);
	if (!err) {
		err = pidf_validate(doc, resource, why, whylen);
		xmlFreeDoc(doc);
	}
	switch (err) {
	case 0: return 0;
	case -EMSGSIZE: return 413;
	case -EPERM: return 403;
	case -ENOMEM: return 500;
	default: return 400;
	}
}

static ev_auth_t authorize(const char *watcher, const char *resource)
{
	return rules_eval(resource, watcher);
}

static bool hold_notify(const char *resource) { return pub_hold_notify("presence", resource); }

const ev_package_t pkg_presence = {
	.name = "presence",
	.notify_types = TYPES,
	.publish_types = TYPES,
	.default_expires = 3600,
	.authorize = authorize,
	.body_for = body_for,
	.on_publish = on_publish,
	.changed = changed,
	.hold_notify = hold_notify,
};

/* A registration changed: when no publication speaks for the presentity
 * its registration-derived state may have changed. */
static void on_loc_change(void *arg, const char *aor, const loc_aor_t *now)
{
	(void)arg;
	(void)now;
	if (pub_count(pkg_presence.name, aor) == 0)
		ev_resource_changed(&pkg_presence, aor);
}

int pkg_presence_init(void)
{
	int err = htable_init(&PP.cache, 1024);
	if (err)
		return err;
	PP.started = true;
	return loc_on_change(on_loc_change, NULL);
}

void pkg_presence_shutdown(void)
{
	if (!PP.started)
		return;
	htable_foreach(&PP.cache, cache_free_node, NULL);
	htable_destroy(&PP.cache);
	PP.started = false;
}
