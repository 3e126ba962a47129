/* simplectl alias add|del|list and user set (see ctl_alias.h). */
#include "server/proxy/ctl_alias.h"
#include "server/db/dbctl.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { EXIT_OK = DBCTL_OK, EXIT_USAGE = DBCTL_USAGE, EXIT_NOTFOUND = DBCTL_NOTFOUND, EXIT_DB = DBCTL_DB };

#define PART_MAX 253

static bool user_char_ok(int c)
{
	return isalnum(c) || strchr("-_.!~*'()&=+$,;?/%", c) != NULL;
}

static bool domain_char_ok(int c) { return isalnum(c) || c == '-' || c == '.' || c == '_'; }

/* "sip:u@d", "u@d" or (with default_domain) "u" -> user and lower-cased
 * domain. */
static int split_addr(const char *arg, const char *default_domain, char *user, char *domain)
{
	if (strncasecmp(arg, "sip:", 4) == 0)
		arg += 4;
	const char *at = strchr(arg, '@');
	size_t ulen = at ? (size_t)(at - arg) : strlen(arg);
	const char *d = at ? at + 1 : default_domain;
	if (!ulen || ulen > PART_MAX || !d || !*d || strlen(d) > PART_MAX) {
		fprintf(stderr, "simplectl: expected USER@DOMAIN, got '%s'\n", arg);
		return -1;
	}
	for (size_t i = 0; i < ulen; i++) {
		if (!user_char_ok((unsigned char)arg[i])) {
			fprintf(stderr, "simplectl: invalid character in user part of '%s'\n", arg);
			return -1;
		}
		user[i] = arg[i];
	}
	user[ulen] = '\0';
	size_t i = 0;
	for (; d[i]; i++) {
		if (!domain_char_ok((unsigned char)d[i])) {
			fprintf(stderr, "simplectl: invalid character in domain of '%s'\n", arg);
			return -1;
		}
		domain[i] = (char)tolower((unsigned char)d[i]);
	}
	domain[i] = '\0';
	return 0;
}



int proxyctl_alias_add(const char *conninfo, int argc, char **argv)
{
	if (argc != 2)
		return EXIT_USAGE;
	char user[PART_MAX + 1], domain[PART_MAX + 1], auser[PART_MAX + 1], adomain[PART_MAX + 1];
	if (split_addr(argv[1], NULL, user, domain) != 0 ||
	    split_addr(argv[0], domain, auser, adomain) != 0)
		return EXIT_USAGE;
	char alias[2 * PART_MAX + 8];
	snprintf(alias, sizeof alias, "sip:%s@%s", auser, adomain);
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	int rc = EXIT_DB;
	/* An alias may not shadow a real user: the user would become
	 * unreachable under their own name. */
	const char *p2[2] = {auser, adomain};
	PGresult *r = dbctl_run(pg, "SELECT 1 FROM users WHERE username = $1 AND domain = $2", 2, p2);
	if (!r)
		goto out;
	bool shadow = PQntuples(r) > 0;
	PQclear(r);
	if (shadow) {
		fprintf(stderr, "simplectl: %s@%s is a user, not available as an alias\n", auser, adomain);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	const char *p3[3] = {alias, user, domain};
	r = PQexecParams(pg,
			 "INSERT INTO aliases (alias, username, domain) VALUES ($1, $2, $3)"
			 " ON CONFLICT (alias) DO NOTHING RETURNING alias",
			 3, NULL, p3, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		/* The foreign key names the missing user. */
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "23503") == 0) {
			fprintf(stderr, "simplectl: no user %s@%s\n", user, domain);
			rc = EXIT_NOTFOUND;
		} else {
			fprintf(stderr, "simplectl: %s", PQerrorMessage(pg));
		}
		PQclear(r);
		goto out;
	}
	int n = PQntuples(r);
	PQclear(r);
	if (n == 0) {
		fprintf(stderr, "simplectl: alias %s already exists\n", alias);
		rc = EXIT_NOTFOUND;
		goto out;
	}
	rc = EXIT_OK;
out:
	PQfinish(pg);
	return rc;
}

int proxyctl_alias_del(const char *conninfo, int argc, char **argv)
{
	if (argc != 1)
		return EXIT_USAGE;
	char auser[PART_MAX + 1], adomain[PART_MAX + 1];
	if (split_addr(argv[0], NULL, auser, adomain) != 0)
		return EXIT_USAGE;
	char alias[2 * PART_MAX + 8];
	snprintf(alias, sizeof alias, "sip:%s@%s", auser, adomain);
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	const char *p[1] = {alias};
	PGresult *r = dbctl_run(pg, "DELETE FROM aliases WHERE alias = $1 RETURNING alias", 1, p);
	int rc = EXIT_DB;
	if (r) {
		rc = PQntuples(r) ? EXIT_OK : EXIT_NOTFOUND;
		if (rc == EXIT_NOTFOUND)
			fprintf(stderr, "simplectl: alias %s not found\n", alias);
		PQclear(r);
	}
	PQfinish(pg);
	return rc;
}

int proxyctl_alias_list(const char *conninfo, int argc, char **argv)
{
	if (argc > 1)
		return EXIT_USAGE;
	char user[PART_MAX + 1] = "", domain[PART_MAX + 1] = "";
	if (argc == 1) {
		if (strchr(argv[0], '@')) {
			if (split_addr(argv[0], NULL, user, domain) != 0)
				return EXIT_USAGE;
		} else {
			size_t i = 0;
			for (; argv[0][i] && i < PART_MAX; i++) {
				if (!domain_char_ok((unsigned char)argv[0][i]))
					return EXIT_USAGE;
				domain[i] = (char)tolower((unsigned char)argv[0][i]);
			}
			domain[i] = '\0';
		}
	}
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	const char *p[2] = {user, domain};
	PGresult *r = dbctl_run(pg,
			  "SELECT alias, 'sip:' || username || '@' || domain FROM aliases"
			  " WHERE ($1 = '' OR username = $1) AND ($2 = '' OR domain = $2)"
			  " ORDER BY domain, username, alias",
			  2, p);
	int rc = EXIT_DB;
	if (r) {
		for (int i = 0; i < PQntuples(r); i++)
			printf("%s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		PQclear(r);
		rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_DB;
	}
	PQfinish(pg);
	return rc;
}

static bool printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
	}
	return strlen(s) <= 256;
}

static bool url_ok(const char *u)
{
	if (!*u)
		return true; /* clears */
	if (strlen(u) > 1024 || !strchr(u, ':'))
		return false;
	for (const unsigned char *p = (const unsigned char *)u; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '"')
			return false;
	}
	return true;
}

int proxyctl_user_set(const char *conninfo, int argc, char **argv)
{
	if (argc < 1)
		return EXIT_USAGE;
	char user[PART_MAX + 1], domain[PART_MAX + 1];
	if (split_addr(argv[0], NULL, user, domain) != 0)
		return EXIT_USAGE;
	const char *name = NULL, *photo = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--photo") == 0 && i + 1 < argc)
			photo = argv[++i];
		else {
			fprintf(stderr, "simplectl: user set: unexpected argument %s\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!name && !photo) {
		fprintf(stderr, "simplectl: user set: give --name and/or --photo\n");
		return EXIT_USAGE;
	}
	if (name && !printable(name)) {
		fprintf(stderr, "simplectl: the display name must be printable (max 256 bytes)\n");
		return EXIT_USAGE;
	}
	if (photo && !url_ok(photo)) {
		fprintf(stderr, "simplectl: the photo must be a URL (scheme:..., no spaces, <, > or \")\n");
		return EXIT_USAGE;
	}
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	/* $3/$4: whether to change each field; '' clears (NULL). */
	const char *p[6] = {user, domain, name ? "1" : "0", name ? name : "", photo ? "1" : "0",
			    photo ? photo : ""};
	PGresult *r = dbctl_run(pg,
			  "WITH w AS (UPDATE users SET"
			  " display_name = CASE WHEN $3 = '1' THEN NULLIF($4, '') ELSE display_name END,"
			  " photo_url = CASE WHEN $5 = '1' THEN NULLIF($6, '') ELSE photo_url END"
			  " WHERE username = $1 AND domain = $2 RETURNING username, domain)"
			  " SELECT pg_notify('simpled_users', username || '@' || domain) FROM w",
			  6, p);
	int rc = EXIT_DB;
	if (r) {
		rc = PQntuples(r) ? EXIT_OK : EXIT_NOTFOUND;
		if (rc == EXIT_NOTFOUND)
			fprintf(stderr, "simplectl: %s@%s not found\n", user, domain);
		PQclear(r);
	}
	PQfinish(pg);
	return rc;
}
