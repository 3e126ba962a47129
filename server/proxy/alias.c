/* The alias table in memory, refreshed through LISTEN (see alias.h). */
#include "server/proxy/alias.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define CHANNEL "simpled_aliases"

static const char SQL_LOAD[] =
    "SELECT alias, 'sip:' || username || '@' || lower(domain) FROM aliases";
static const char SQL_GET[] =
    "SELECT 'sip:' || username || '@' || lower(domain) FROM aliases WHERE alias = $1";

typedef struct alias_ent {
	hnode_t node;
	char *alias;
	char *target;
} alias_ent_t;

static struct {
	htable_t table;
	bool ready;
} A;

static bool ent_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, alias_ent_t, node)->alias, key) == 0;
}

static alias_ent_t *find(const char *alias)
{
	hnode_t *n = htable_find(&A.table, hash_str(alias), ent_eq, alias);
	return n ? container_of(n, alias_ent_t, node) : NULL;
}

static int ensure_table(void)
{
	if (A.ready)
		return 0;
	int err = htable_init(&A.table, 256);
	if (!err)
		A.ready = true;
	return err;
}

int alias_set(const char *alias, const char *target)
{
	if (ensure_table() != 0)
		return -ENOMEM;
	char *t = strdup(target);
	if (!t)
		return -ENOMEM;
	alias_ent_t *e = find(alias);
	if (e) {
		free(e->target);
		e->target = t;
		return 0;
	}
	e = calloc(1, sizeof *e);
	if (!e || !(e->alias = strdup(alias))) {
		free(e);
		free(t);
		return -ENOMEM;
	}
	e->target = t;
	htable_insert(&A.table, &e->node, hash_str(e->alias));
	return 0;
}

int alias_remove(const char *alias)
{
	if (!A.ready)
		return -ENOENT;
	alias_ent_t *e = find(alias);
	if (!e)
		return -ENOENT;
	htable_remove(&A.table, &e->node);
	free(e->alias);
	free(e->target);
	free(e);
	return 0;
}

size_t alias_count(void) { return A.ready ? A.table.count : 0; }

int alias_resolve(const char *aor, char *out, size_t outlen)
{
	if (!A.ready || !aor)
		return -ENOENT;
	alias_ent_t *e = find(aor);
	if (!e)
		return -ENOENT;
	size_t n = strlen(e->target);
	if (n + 1 > outlen)
		return -ENOSPC;
	memcpy(out, e->target, n + 1);
	return 0;
}

int alias_apply_ruri(sipmsg_t *req, const char *domain)
{
	osip_uri_t *u = req->m ? req->m->req_uri : NULL;
	if (!A.ready || !A.table.count || !u || !u->username || !*u->username || !domain)
		return 0;
	char aor[512], target[512];
	int n = snprintf(aor, sizeof aor, "sip:%s@%s", u->username, domain);
	if (n < 0 || (size_t)n >= sizeof aor)
		return 0;
	for (char *p = aor + 4 + strlen(u->username); *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (alias_resolve(aor, target, sizeof target) != 0)
		return 0;
	/* target is "sip:user@domain" (alias.c builds it that way). */
	const char *at = strrchr(target, '@');
	if (strncmp(target, "sip:", 4) != 0 || !at)
		return 0;
	size_t ulen = (size_t)(at - target - 4);
	char *user = osip_malloc(ulen + 1);
	char *host = osip_strdup(at + 1);
	if (user) {
		memcpy(user, target + 4, ulen);
		user[ulen] = '\0';
	}
	if (!user || !host) {
		osip_free(user);
		osip_free(host);
		return -ENOMEM;
	}
	osip_free(u->username);
	osip_free(u->host);
	osip_free(u->port);
	u->username = user;
	u->host = host;
	u->port = NULL;
	return 1;
}

/* --- refresh ------------------------------------------------------------ */

static void get_done(void *ctx, int err, PGresult *res)
{
	char *alias = ctx;
	if (err) {
		LOGW("alias", "cannot re-read alias %s: %d", alias, err);
	} else if (PQntuples(res) > 0) {
		alias_set(alias, PQgetvalue(res, 0, 0));
		LOGD("alias", "%s -> %s", alias, PQgetvalue(res, 0, 0));
	} else {
		alias_remove(alias);
		LOGD("alias", "%s removed", alias);
	}
	free(alias);
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	if (!payload || !*payload)
		return;
	char *alias = strdup(payload);
	if (!alias)
		return;
	const char *params[1] = {alias};
	if (db_exec("proxy_alias_get", 1, params, get_done, alias) != 0) {
		LOGW("alias", "cannot re-read alias %s (database unavailable)", alias);
		free(alias);
	}
}

static int load_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	int err = 0;
	for (int i = 0; i < PQntuples(r) && !err; i++)
		err = alias_set(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	LOGI("alias", "%zu alias(es) loaded", alias_count());
	return err;
}

static int load(const char *conninfo)
{
	return db_load_sync(conninfo, "aliases", SQL_LOAD, 0, NULL, load_rows, NULL);
}

int alias_init(const char *conninfo)
{
	int err = ensure_table();
	if (!err && conninfo)
		err = load(conninfo);
	if (!err && conninfo)
		err = db_prepare("proxy_alias_get", SQL_GET);
	if (!err && conninfo)
		err = db_listen(CHANNEL, on_notify, NULL);
	return err;
}

static void free_one(hnode_t *n, void *arg)
{
	(void)arg;
	alias_ent_t *e = container_of(n, alias_ent_t, node);
	htable_remove(&A.table, n);
	free(e->alias);
	free(e->target);
	free(e);
}

void alias_shutdown(void)
{
	if (!A.ready)
		return;
	htable_foreach(&A.table, free_one, NULL);
	htable_destroy(&A.table);
	A.ready = false;
}
