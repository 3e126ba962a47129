/* The user directory in memory, refreshed through LISTEN (see
 * directory.h). */
#include "server/proxy/directory.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define CHANNEL "simpled_users"

static const char SQL_LOAD[] =
    "SELECT 'sip:' || username || '@' || lower(domain), display_name, photo_url FROM users";
static const char SQL_GET[] =
    "SELECT 'sip:' || username || '@' || lower(domain), display_name, photo_url FROM users"
    " WHERE username = $1 AND lower(domain) = lower($2)";

typedef struct dir_ent {
	hnode_t node;
	dir_user_t pub;
	char *aor, *name, *photo;
} dir_ent_t;

static struct {
	htable_t table;
	bool ready;
} D;

static bool ent_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, dir_ent_t, node)->aor, key) == 0;
}

static dir_ent_t *find(const char *aor)
{
	if (!D.ready || !aor)
		return NULL;
	hnode_t *n = htable_find(&D.table, hash_str(aor), ent_eq, aor);
	return n ? container_of(n, dir_ent_t, node) : NULL;
}

static int ensure_table(void)
{
	if (D.ready)
		return 0;
	int err = htable_init(&D.table, 1024);
	if (!err)
		D.ready = true;
	return err;
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

int dir_set(const char *aor, const char *display_name, const char *photo_url)
{
	if (ensure_table() != 0)
		return -ENOMEM;
	char *name = dup_or_null(display_name), *photo = dup_or_null(photo_url);
	if ((display_name && *display_name && !name) || (photo_url && *photo_url && !photo)) {
		free(name);
		free(photo);
		return -ENOMEM;
	}
	dir_ent_t *e = find(aor);
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->aor = strdup(aor))) {
			free(e);
			free(name);
			free(photo);
			return -ENOMEM;
		}
		htable_insert(&D.table, &e->node, hash_str(e->aor));
	}
	free(e->name);
	free(e->photo);
	e->name = name;
	e->photo = photo;
	e->pub.aor = e->aor;
	e->pub.display_name = e->name;
	e->pub.photo_url = e->photo;
	return 0;
}

static void ent_free(dir_ent_t *e)
{
	free(e->aor);
	free(e->name);
	free(e->photo);
	free(e);
}

int dir_remove(const char *aor)
{
	dir_ent_t *e = find(aor);
	if (!e)
		return -ENOENT;
	htable_remove(&D.table, &e->node);
	ent_free(e);
	return 0;
}

unsigned long dir_count(void) { return D.ready ? (unsigned long)D.table.count : 0; }

const dir_user_t *dir_find(const char *aor)
{
	dir_ent_t *e = find(aor);
	return e ? &e->pub : NULL;
}

bool dir_name_ok(const char *name)
{
	if (!name)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
	}
	return strlen(name) <= 256;
}

bool dir_url_ok(const char *url)
{
	if (!url || !*url || strlen(url) > 1024 || !strchr(url, ':'))
		return false;
	for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '"')
			return false;
	}
	return true;
}

/* Whether the request already has an icon: a Call-Info value with
 * purpose=icon (RFC 3261 §20.9). */
static bool has_icon(const sipmsg_t *req)
{
	osip_list_iterator_t it;
	for (osip_call_info_t *c = osip_list_get_first(&req->m->call_infos, &it); c;
	     c = osip_list_get_next(&it)) {
		osip_generic_param_t *p = NULL;
		osip_generic_param_get_byname(&c->gen_params, "purpose", &p);
		if (p && p->gvalue && strcasecmp(p->gvalue, "icon") == 0)
			return true;
	}
	return false;
}

int dir_identity_headers(const sipmsg_t *req, const char *aor, buf_t *out)
{
	const dir_user_t *u = dir_find(aor);
	if (!u)
		return -ENOENT;
	if (u->display_name && dir_name_ok(u->display_name)) {
		/* A quoted-string (RFC 3261 §25.1): escape '"' and '\'. */
		buf_puts(out, "P-Asserted-Identity: \"");
		for (const char *p = u->display_name; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_puts(out, "\\");
			buf_append(out, p, 1);
		}
		buf_printf(out, "\" <%s>\r\n", u->aor);
	} else {
		buf_printf(out, "P-Asserted-Identity: <%s>\r\n", u->aor);
	}
	if (u->photo_url && dir_url_ok(u->photo_url) && !has_icon(req))
		buf_printf(out, "Call-Info: <%s>;purpose=icon\r\n", u->photo_url);
	return out->err;
}

/* --- refresh ------------------------------------------------------------ */

static void get_done(void *ctx, int err, PGresult *res)
{
	char *key = ctx; /* "sip:user@domain" */
	if (err) {
		LOGW("directory", "cannot re-read %s: %d", key, err);
	} else if (PQntuples(res) > 0) {
		dir_set(PQgetvalue(res, 0, 0), PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
			PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2));
	} else {
		dir_remove(key);
	}
	free(key);
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	const char *at = payload ? strrchr(payload, '@') : NULL;
	if (!at || at == payload || !at[1])
		return;
	size_t ulen = (size_t)(at - payload);
	char *key = malloc(4 + strlen(payload) + 1);
	char *user = malloc(ulen + 1);
	if (!key || !user) {
		free(key);
		free(user);
		return;
	}
	memcpy(user, payload, ulen);
	user[ulen] = '\0';
	strcpy(key, "sip:");
	strcat(key, payload);
	for (char *p = key + 4 + ulen; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *params[2] = {user, at + 1};
	if (db_exec("proxy_user_get", 2, params, get_done, key) != 0) {
		LOGW("directory", "cannot re-read %s (database unavailable)", key);
		free(key);
	}
	free(user); /* db_exec copies its parameters */
}

static int load_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	int err = 0;
	for (int i = 0; i < PQntuples(r) && !err; i++)
		err = dir_set(PQgetvalue(r, i, 0), PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
			      PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2));
	LOGI("directory", "%lu user(s) loaded", dir_count());
	return err;
}

static int load(const char *conninfo)
{
	return db_load_sync(conninfo, "users", SQL_LOAD, 0, NULL, load_rows, NULL);
}

int dir_init(const char *conninfo)
{
	int err = ensure_table();
	if (!err && conninfo)
		err = load(conninfo);
	if (!err && conninfo)
		err = db_prepare("proxy_user_get", SQL_GET);
	if (!err && conninfo)
		err = db_listen(CHANNEL, on_notify, NULL);
	return err;
}

static void free_one(hnode_t *n, void *arg)
{
	(void)arg;
	htable_remove(&D.table, n);
	ent_free(container_of(n, dir_ent_t, node));
}

void dir_shutdown(void)
{
	if (!D.ready)
		return;
	htable_foreach(&D.table, free_one, NULL);
	htable_destroy(&D.table);
	D.ready = false;
}
