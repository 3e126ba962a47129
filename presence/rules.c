/* Presence authorization rules (see rules.h). */
#include "presence/rules.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"

typedef struct rset {
	hnode_t node;
	char *presentity;
	rule_t *rules;
	size_t n;
} rset_t;

static struct {
	htable_t sets;
	ev_auth_t def;
	rules_changed_cb changed;
	bool started;
} RU;

static const char *const SQL_ONE =
	"SELECT presentity, watcher, action FROM presence_rules WHERE presentity = $1";
static const char *const SQL_ALL = "SELECT presentity, watcher, action FROM presence_rules";

/* --- pure helpers ----------------------------------------------------------- */

int rules_action_parse(const char *s, ev_auth_t *out)
{
	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "allow") == 0)
		*out = EV_AUTH_ALLOW;
	else if (strcasecmp(s, "block") == 0)
		*out = EV_AUTH_BLOCK;
	else if (strcasecmp(s, "polite-block") == 0 || strcasecmp(s, "polite_block") == 0)
		*out = EV_AUTH_POLITE;
	else if (strcasecmp(s, "pending") == 0 || strcasecmp(s, "confirm") == 0)
		*out = EV_AUTH_PENDING;
	else
		return -EINVAL;
	return 0;
}

int rules_normalize_watcher(const char *in, char *out, size_t outlen)
{
	if (!in || !*in)
		return -EINVAL;
	while (*in == ' ' || *in == '\t')
		in++;
	if (strncasecmp(in, "sips:", 5) == 0)
		in += 5;
	else if (strncasecmp(in, "sip:", 4) == 0)
		in += 4;
	const char *at = strrchr(in, '@');
	int n;
	if (!at || (at == in + 1 && in[0] == '*')) {
		const char *dom = at ? at + 1 : in;
		if (!*dom)
			return -EINVAL;
		n = snprintf(out, outlen, "%s", dom);
	} else {
		if (at == in || !at[1])
			return -EINVAL;
		n = snprintf(out, outlen, "sip:%.*s@%s", (int)(at - in), in, at + 1);
	}
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	/* Lower-case the host (what follows '@', or the whole domain). */
	char *h = strrchr(out, '@');
	h = h ? h + 1 : (strncmp(out, "sip:", 4) == 0 ? out + 4 : out);
	for (; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	/* Trailing blanks are not part of the pattern. */
	size_t len = strlen(out);
	while (len && (out[len - 1] == ' ' || out[len - 1] == '\t'))
		out[--len] = '\0';
	return 0;
}

const char *rules_action_name(ev_auth_t a)
{
	switch (a) {
	case EV_AUTH_ALLOW: return "allow";
	case EV_AUTH_BLOCK: return "block";
	case EV_AUTH_POLITE: return "polite-block";
	default: return "pending";
	}
}

bool rules_match(const rule_t *rules, size_t n, const char *watcher, ev_auth_t *out)
{
	const char *at = strrchr(watcher, '@');
	const char *dom = at ? at + 1 : NULL;
	bool have_dom = false;
	ev_auth_t dom_action = EV_AUTH_ALLOW;
	for (size_t i = 0; i < n; i++) {
		const char *w = rules[i].watcher;
		if (strncmp(w, "sip:", 4) == 0) {
			if (strcmp(w, watcher) == 0) {
				*out = rules[i].action;
				return true;
			}
		} else if (dom && strcasecmp(w, dom) == 0) {
			have_dom = true;
			dom_action = rules[i].action;
		}
	}
	if (have_dom)
		*out = dom_action;
	return have_dom;
}

/* --- the rule sets ------------------------------------------------------------ */

static bool set_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, rset_t, node)->presentity, key) == 0;
}

static rset_t *set_get(const char *presentity)
{
	hnode_t *n = htable_find(&RU.sets, hash_str(presentity), set_eq, presentity);
	return n ? container_of(n, rset_t, node) : NULL;
}

static void set_free(rset_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->rules[i].watcher);
	free(s->rules);
	free(s->presentity);
	free(s);
}

static void set_drop(const char *presentity)
{
	rset_t *s = set_get(presentity);
	if (s) {
		htable_remove(&RU.sets, &s->node);
		set_free(s);
	}
}

static void set_add(const char *presentity, const char *watcher, const char *action)
{
	ev_auth_t a;
	char w[512];
	if (rules_action_parse(action, &a) != 0 || rules_normalize_watcher(watcher, w, sizeof w) != 0) {
		LOGW("rules", "ignoring rule %s -> %s: %s", presentity, watcher, action);
		return;
	}
	rset_t *s = set_get(presentity);
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s || !(s->presentity = strdup(presentity))) {
			free(s);
			return;
		}
		htable_insert(&RU.sets, &s->node, hash_str(presentity));
	}
	rule_t *p = realloc(s->rules, (s->n + 1) * sizeof *p);
	if (!p)
		return;
	s->rules = p;
	if (!(s->rules[s->n].watcher = strdup(w)))
		return;
	s->rules[s->n].action = a;
	s->n++;
}

static void load_rows(PGresult *r)
{
	int n = PQntuples(r);
	for (int i = 0; i < n; i++)
		set_add(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
}

ev_auth_t rules_eval(const char *presentity, const char *watcher)
{
	if (strcmp(presentity, watcher) == 0)
		return EV_AUTH_ALLOW;
	rset_t *s = set_get(presentity);
	ev_auth_t a;
	if (s && rules_match(s->rules, s->n, watcher, &a))
		return a;
	return RU.def;
}

const rule_t *rules_get(const char *presentity, size_t *n)
{
	rset_t *s = RU.started ? set_get(presentity) : NULL;
	*n = s ? s->n : 0;
	return s ? s->rules : NULL;
}

void rules_replace(const char *presentity, const rule_t *rules, size_t n)
{
	if (!RU.started)
		return;
	set_drop(presentity);
	for (size_t i = 0; i < n; i++)
		set_add(presentity, rules[i].watcher, rules_action_name(rules[i].action));
	if (RU.changed)
		RU.changed(presentity);
}

/* --- changes ------------------------------------------------------------------ */

typedef struct reload {
	char *presentity; /* NULL = all */
} reload_t;

static void free_set_node(hnode_t *n, void *arg)
{
	(void)arg;
	set_free(container_of(n, rset_t, node));
}

struct names {
	char **v;
	size_t n, cap;
};

static void collect_name(hnode_t *n, void *arg)
{
	struct names *c = arg;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **p = realloc(c->v, cap * sizeof *p);
		if (!p)
			return;
		c->v = p;
		c->cap = cap;
	}
	char *d = strdup(container_of(n, rset_t, node)->presentity);
	if (d)
		c->v[c->n++] = d;
}

static void reload_done(void *arg, int err, PGresult *res)
{
	reload_t *r = arg;
	if (err || !RU.started) {
		if (err)
			LOGW("rules", "cannot re-read the rules of %s (%d)", r->presentity ? r->presentity : "everyone", err);
		free(r->presentity);
		free(r);
		return;
	}
	if (r->presentity) {
		set_drop(r->presentity);
		load_rows(res);
		LOGI("rules", "rules of %s re-read", r->presentity);
		if (RU.changed)
			RU.changed(r->presentity);
	} else {
		/* Everything: the presentities that had rules and those that
		 * have them now are all re-evaluated. */
		struct names c = {0};
		htable_foreach(&RU.sets, collect_name, &c);
		htable_foreach(&RU.sets, free_set_node, NULL);
		htable_destroy(&RU.sets);
		htable_init(&RU.sets, 256);
		load_rows(res);
		htable_foreach(&RU.sets, collect_name, &c);
		LOGI("rules", "all rules re-read");
		for (size_t i = 0; i < c.n; i++) {
			if (RU.changed)
				RU.changed(c.v[i]);
			free(c.v[i]);
		}
		free(c.v);
	}
	free(r->presentity);
	free(r);
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	reload_t *r = calloc(1, sizeof *r);
	if (!r)
		return;
	bool all = !payload || !*payload || strcmp(payload, "*") == 0;
	if (!all && !(r->presentity = strdup(payload))) {
		free(r);
		return;
	}
	const char *params[1] = {r->presentity};
	int err = all ? db_exec("rules_all", 0, NULL, reload_done, r)
		      : db_exec("rules_one", 1, params, reload_done, r);
	if (err) {
		LOGW("rules", "cannot re-read rules now (%d)", err);
		free(r->presentity);
		free(r);
	}
}

static int startup_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	load_rows(r);
	LOGI("rules", "loaded %d rule(s) for %zu presentit%s", PQntuples(r), RU.sets.count,
	     RU.sets.count == 1 ? "y" : "ies");
	return 0;
}

int rules_init(uv_loop_t *loop, const char *conninfo, ev_auth_t default_policy,
	       rules_changed_cb changed)
{
	(void)loop;
	RU.def = default_policy;
	RU.changed = changed;
	int err = htable_init(&RU.sets, 256);
	if (!err)
		err = db_prepare("rules_one", SQL_ONE);
	if (!err)
		err = db_prepare("rules_all", SQL_ALL);
	if (err)
		return err;
	if (conninfo) {
		err = db_load_sync(conninfo, "rules", SQL_ALL, 0, NULL, startup_rows, NULL);
		if (err)
			return err;
	}
	RU.started = true;
	return db_listen(RULES_CHANNEL, on_notify, NULL);
}

void rules_shutdown(void)
{
	if (!RU.started)
		return;
	RU.started = false;
	htable_foreach(&RU.sets, free_set_node, NULL);
	htable_destroy(&RU.sets);
}
