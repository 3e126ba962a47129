/* simplectl buddies add|del|list (see ctl_buddies.h). */
#include "presence/ctl_buddies.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "presence/buddylist.h"
#include "presence/xcap_store.h"
#include "server/base/buf.h"
#include "server/db/dbctl.h"

enum { EXIT_OK = DBCTL_OK, EXIT_USAGE = DBCTL_USAGE, EXIT_NOTFOUND = DBCTL_NOTFOUND, EXIT_DB = DBCTL_DB };

#define PART_MAX 253
#define LIST_MAX 64

/* "sip:u@d" or "u@d" -> "u@d" with the domain lower-cased. */
static int owner_of(const char *arg, char *out, size_t outlen)
{
	if (strncasecmp(arg, "sip:", 4) == 0)
		arg += 4;
	const char *at = strchr(arg, '@');
	if (!at || at == arg || !at[1] || strlen(arg) >= outlen || strlen(arg) > 2 * PART_MAX)
		return -1;
	for (const char *p = arg; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == 0x7f)
			return -1;
	size_t i = 0;
	for (; arg[i]; i++)
		out[i] = arg + i > at ? (char)tolower((unsigned char)arg[i]) : arg[i];
	out[i] = '\0';
	return 0;
}

static bool list_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > LIST_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}




/* The current body of a document (malloc'ed, NULL when there is none);
 * *err set on a database error. */
static char *load_doc(PGconn *pg, const char *auid, const char *owner, size_t *len, bool *err)
{
	const char *p[2] = {auid, owner};
	PGresult *r = dbctl_run(pg,
			  "SELECT body FROM xcap_documents WHERE auid = $1 AND owner = $2"
			  " AND name = 'index'",
			  2, p);
	*err = r == NULL;
	if (!r || PQntuples(r) == 0) {
		PQclear(r);
		return NULL;
	}
	*len = (size_t)PQgetlength(r, 0, 0);
	char *body = strndup(PQgetvalue(r, 0, 0), *len);
	PQclear(r);
	if (!body)
		*err = true;
	return body;
}

static bool store_doc(PGconn *pg, const char *auid, const char *owner, buf_t *body)
{
	char etag[40];
	xstore_new_etag(etag, sizeof etag);
	const char *p[4] = {auid, owner, etag, buf_cstr(body)};
	return dbctl_exec(pg,
		       "INSERT INTO xcap_documents (auid, owner, name, etag, body)"
		       " VALUES ($1, $2, 'index', $3, $4) ON CONFLICT (auid, owner, name) DO UPDATE"
		       " SET etag = EXCLUDED.etag, body = EXCLUDED.body,"
		       " updated_at = extract(epoch FROM now())::bigint",
		       4, p);
}

static const char *xcap_root(void)
{
	const char *r = getenv("SIMPLED_XCAP_ROOT");
	return r && *r ? r : "http://127.0.0.1:8080/xcap-root";
}

/* Starts the transaction that serialises edits of one owner's lists
 * (the row may not exist yet, so FOR UPDATE cannot lock it). */
static bool begin_owner(PGconn *pg, const char *owner)
{
	const char *p[1] = {owner};
	return dbctl_exec(pg, "BEGIN", 0, NULL) &&
	       dbctl_exec(pg, "SELECT pg_advisory_xact_lock(hashtext('buddies ' || $1))", 1, p);
}

static int user_exists(PGconn *pg, const char *owner)
{
	char user[2 * PART_MAX + 2];
	snprintf(user, sizeof user, "%s", owner);
	char *at = strrchr(user, '@');
	*at = '\0';
	const char *p[2] = {user, at + 1};
	PGresult *r = dbctl_run(pg, "SELECT 1 FROM users WHERE username = $1 AND domain = $2", 2, p);
	if (!r)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	return n > 0;
}

int buddyctl_add(const char *conninfo, int argc, char **argv)
{
	if (argc < 3 || argc > 4)
		return EXIT_USAGE;
	char owner[2 * PART_MAX + 2], buddy[2 * PART_MAX + 2];
	if (owner_of(argv[0], owner, sizeof owner) != 0 || owner_of(argv[2], buddy, sizeof buddy)) {
		fprintf(stderr, "simplectl: expected USER@DOMAIN\n");
		return EXIT_USAGE;
	}
	if (!list_name_ok(argv[1])) {
		fprintf(stderr, "simplectl: list names are 1-%d letters, digits, '-', '_' or '.'\n",
			LIST_MAX);
		return EXIT_USAGE;
	}
	const char *name = argc == 4 ? argv[3] : NULL;
	char buddy_uri[sizeof buddy + 4];
	snprintf(buddy_uri, sizeof buddy_uri, "sip:%s", buddy);
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	int rc = EXIT_DB;
	buf_t rl, rls, ref, svc;
	buf_init(&rl, 0);
	buf_init(&rls, 0);
	buf_init(&ref, 0);
	buf_init(&svc, 0);
	char *old_rl = NULL, *old_rls = NULL;
	if (!begin_owner(pg, owner))
		goto out;
	int ex = user_exists(pg, owner);
	if (ex <= 0) {
		if (ex == 0) {
			fprintf(stderr, "simplectl: no user %s\n", owner);
			rc = EXIT_NOTFOUND;
		}
		goto out;
	}
	size_t len_rl = 0, len_rls = 0;
	bool err = false;
	old_rl = load_doc(pg, "resource-lists", owner, &len_rl, &err);
	if (err)
		goto out;
	old_rls = load_doc(pg, "rls-services", owner, &len_rls, &err);
	if (err)
		goto out;
	int e = rl_doc_add_entry(old_rl, len_rl, argv[1], buddy_uri, name, &rl);
	if (e == -EEXIST) {
		fprintf(stderr, "simplectl: %s is already on list %s of %s\n", buddy_uri, argv[1], owner);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	if (e) {
		fprintf(stderr, "simplectl: the resource-lists document of %s is unusable (%d)\n", owner, e);
		goto out;
	}
	/* The list's service URI: sip:USER-LIST@DOMAIN. */
	const char *at = strrchr(owner, '@');
	buf_printf(&svc, "sip:%.*s-%s@%s", (int)(at - owner), owner, argv[1], at + 1);
	rl_list_ref(xcap_root(), owner, argv[1], &ref);
	e = rls_doc_add_service(old_rls, len_rls, buf_cstr(&svc), buf_cstr(&ref), &rls);
	if (e && e != -EEXIST) {
		fprintf(stderr, "simplectl: the rls-services document of %s is unusable (%d)\n", owner, e);
		goto out;
	}
	if (rl.err || !store_doc(pg, "resource-lists", owner, &rl) ||
	    (e == 0 && (rls.err || !store_doc(pg, "rls-services", owner, &rls))) ||
	    !dbctl_exec(pg, "COMMIT", 0, NULL))
		goto out;
	printf("%s\n", buf_cstr(&svc));
	rc = EXIT_OK;
out:
	free(old_rl);
	free(old_rls);
	buf_free(&rl);
	buf_free(&rls);
	buf_free(&ref);
	buf_free(&svc);
	PQfinish(pg); /* an open transaction rolls back */
	return rc;
}

int buddyctl_del(const char *conninfo, int argc, char **argv)
{
	if (argc != 3)
		return EXIT_USAGE;
	char owner[2 * PART_MAX + 2], buddy[2 * PART_MAX + 2];
	if (owner_of(argv[0], owner, sizeof owner) != 0 || owner_of(argv[2], buddy, sizeof buddy) ||
	    !list_name_ok(argv[1]))
		return EXIT_USAGE;
	char buddy_uri[sizeof buddy + 4];
	snprintf(buddy_uri, sizeof buddy_uri, "sip:%s", buddy);
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	int rc = EXIT_DB;
	buf_t rl;
	buf_init(&rl, 0);
	char *old = NULL;
	if (!begin_owner(pg, owner))
		goto out;
	size_t len = 0;
	bool err = false;
	old = load_doc(pg, "resource-lists", owner, &len, &err);
	if (err)
		goto out;
	int e = rl_doc_del_entry(old, len, argv[1], buddy_uri, &rl);
	if (e == -ENOENT) {
		fprintf(stderr, "simplectl: %s is not on list %s of %s\n", buddy_uri, argv[1], owner);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	if (e || rl.err || !store_doc(pg, "resource-lists", owner, &rl) ||
	    !dbctl_exec(pg, "COMMIT", 0, NULL))
		goto out;
	rc = EXIT_OK;
out:
	free(old);
	buf_free(&rl);
	PQfinish(pg);
	return rc;
}

int buddyctl_list(const char *conninfo, int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return EXIT_USAGE;
	char owner[2 * PART_MAX + 2];
	if (owner_of(argv[0], owner, sizeof owner) != 0)
		return EXIT_USAGE;
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	int rc = EXIT_DB;
	size_t len = 0;
	bool err = false;
	char *doc = load_doc(pg, "resource-lists", owner, &len, &err);
	if (err)
		goto out;
	rc = EXIT_OK;
	if (!doc)
		goto out;
	/* Every list of the document, or the one asked for. */
	rl_ref_t ref;
	memset(&ref, 0, sizeof ref);
	for (unsigned pos = 1;; pos++) {
		ref.depth = 1;
		ref.pos[0] = pos;
		rl_entry_t *v = NULL;
		size_t n = 0;
		int e = rl_list_entries(doc, len, &ref, &v, &n);
		if (e == -ENOENT)
			break;
		if (e) {
			fprintf(stderr, "simplectl: the resource-lists document of %s is unusable\n", owner);
			rc = EXIT_DB;
			break;
		}
		char lname[RL_NAME_MAX] = "";
		rl_list_name(doc, len, pos, lname, sizeof lname);
		if (argc < 2 || strcmp(argv[1], lname) == 0)
			for (size_t i = 0; i < n; i++)
				printf("%s %s%s%s\n", lname, v[i].uri, v[i].name ? " " : "",
				       v[i].name ? v[i].name : "");
		rl_entries_free(v, n);
	}
out:
	free(doc);
	PQfinish(pg);
	return rc;
}
