/* simplectl: the administration command line of simpled.
 *
 *   simplectl [--db CONNINFO] COMMAND ...
 *
 * Commands live in one table (group, command, argument counts, handler,
 * usage); adding a command group is adding rows.  The connection string
 * comes from --db, else $SIMPLED_DB, else the private development cluster
 * of scripts/dev-db.sh under <checkout>/var/pg (port from var/pg/port,
 * else 5432).
 *
 * Synchronous libpq: this is a short-lived tool, not the serving loop.
 * SQL is parameterised; passwords and HA1 values are never printed.  Every
 * change to a user is announced with NOTIFY on channel simpled_users
 * (payload user@domain), in the same statement, so running servers drop
 * cached credentials as the change commits.
 *
 * Exit status: 0 ok, 1 usage error, 2 not found / already exists,
 * 3 database (or other runtime) error. */
#include "server/auth/auth.h"
#include "server/base/log.h"
#include "messaging/ctl_messages.h"
#include "presence/ctl_buddies.h"
#include "server/proxy/ctl_alias.h"
#include "server/db/db.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef SIMPLED_SCHEMA_DIR
#define SIMPLED_SCHEMA_DIR "schema"
#endif
#ifndef SIMPLED_DEV_DB_DIR
#define SIMPLED_DEV_DB_DIR "var/pg"
#endif

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_NOTFOUND = 2, EXIT_DB = 3 };

#define USER_MAX 128
#define DOMAIN_MAX 253
#define PASSWORD_MAX 1024
#define NOTIFY_CHANNEL "simpled_users"

struct ctl {
	const char *conninfo;
	PGconn *pg;
};

struct ctl_cmd {
	const char *group;
	const char *name; /* NULL: a one-word command (the group is the command) */
	int min_args, max_args;
	int (*run)(struct ctl *ctl, int argc, char **argv);
	const char *usage; /* the arguments */
	const char *help;
};

static int cmd_migrate(struct ctl *ctl, int argc, char **argv);
static int cmd_user_add(struct ctl *ctl, int argc, char **argv);
static int cmd_user_passwd(struct ctl *ctl, int argc, char **argv);
static int cmd_user_del(struct ctl *ctl, int argc, char **argv);
static int cmd_user_list(struct ctl *ctl, int argc, char **argv);
static int cmd_rules_set(struct ctl *ctl, int argc, char **argv);
static int cmd_messages_list(struct ctl *ctl, int argc, char **argv)
{
	return msgctl_list(ctl->conninfo, argc, argv);
}
static int cmd_messages_purge(struct ctl *ctl, int argc, char **argv)
{
	return msgctl_purge(ctl->conninfo, argc, argv);
}
static int cmd_alias_add(struct ctl *ctl, int argc, char **argv)
{
	return proxyctl_alias_add(ctl->conninfo, argc, argv);
}
static int cmd_alias_del(struct ctl *ctl, int argc, char **argv)
{
	return proxyctl_alias_del(ctl->conninfo, argc, argv);
}
static int cmd_alias_list(struct ctl *ctl, int argc, char **argv)
{
	return proxyctl_alias_list(ctl->conninfo, argc, argv);
}
static int cmd_buddies_add(struct ctl *ctl, int argc, char **argv)
{
	return buddyctl_add(ctl->conninfo, argc, argv);
}
static int cmd_buddies_del(struct ctl *ctl, int argc, char **argv)
{
	return buddyctl_del(ctl->conninfo, argc, argv);
}
static int cmd_buddies_list(struct ctl *ctl, int argc, char **argv)
{
	return buddyctl_list(ctl->conninfo, argc, argv);
}
static int cmd_user_set(struct ctl *ctl, int argc, char **argv)
{
	return proxyctl_user_set(ctl->conninfo, argc, argv);
}
static int cmd_rules_del(struct ctl *ctl, int argc, char **argv);
static int cmd_rules_list(struct ctl *ctl, int argc, char **argv);

static const struct ctl_cmd commands[] = {
	{"migrate", NULL, 0, 2, cmd_migrate, "[--schema DIR]",
	 "apply the schema migrations not applied yet (default DIR " SIMPLED_SCHEMA_DIR ")"},
	{"user", "add", 2, 2, cmd_user_add, "USER@DOMAIN PASSWORD",
	 "create a user; the realm is DOMAIN; PASSWORD - reads one line from stdin"},
	{"user", "passwd", 2, 2, cmd_user_passwd, "USER@DOMAIN PASSWORD", "set a user's password"},
	{"user", "del", 1, 1, cmd_user_del, "USER@DOMAIN", "delete a user"},
	{"user", "list", 0, 1, cmd_user_list, "[DOMAIN]", "print user@domain, one a line"},
	{"user", "set", 1, 5, cmd_user_set, "USER@DOMAIN [--name NAME] [--photo URL]",
	 "set a user's display name and photo URL (\"\" clears)"},
	{"alias", "add", 2, 2, cmd_alias_add, "ALIAS USER@DOMAIN",
	 "another name for a user (1001, 1001@DOMAIN or sip:1001@DOMAIN)"},
	{"alias", "del", 1, 1, cmd_alias_del, "ALIAS@DOMAIN", "remove an alias"},
	{"alias", "list", 0, 1, cmd_alias_list, "[USER@DOMAIN|DOMAIN]", "print alias and user, one a line"},
	{"buddies", "add", 3, 4, cmd_buddies_add, "USER@DOMAIN LIST BUDDY [NAME]",
	 "put BUDDY on USER's buddy list LIST; prints the list's URI (sip:USER-LIST@DOMAIN)"},
	{"buddies", "del", 3, 3, cmd_buddies_del, "USER@DOMAIN LIST BUDDY", "take BUDDY off the list"},
	{"buddies", "list", 1, 2, cmd_buddies_list, "USER@DOMAIN [LIST]",
	 "print list, buddy and name, one a line"},
	{"messages", "list", 1, 1, cmd_messages_list, "USER@DOMAIN", "print the stored messages of a user"},
	{"messages", "purge", 1, 1, cmd_messages_purge, "USER@DOMAIN", "delete the stored messages of a user"},
	{"rules", "add", 3, 3, cmd_rules_set, "PRESENTITY WATCHER allow|block|polite-block|pending",
	 "set who may watch PRESENTITY (WATCHER: user@domain, or a whole domain); takes effect at once"},
	{"rules", "allow", 2, 2, cmd_rules_set, "PRESENTITY WATCHER",
	 "shorthand for rules add ... allow (approves a pending watcher)"},
	{"rules", "block", 2, 2, cmd_rules_set, "PRESENTITY WATCHER", "shorthand for rules add ... block"},
	{"rules", "del", 2, 2, cmd_rules_del, "PRESENTITY WATCHER", "remove a rule (the default applies again)"},
	{"rules", "list", 0, 1, cmd_rules_list, "[PRESENTITY]", "print presentity watcher action, one a line"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: simplectl [--db CONNINFO] COMMAND ...\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct ctl_cmd *c = &commands[i];
		char head[64];
		snprintf(head, sizeof head, "%s%s%s %s", c->group, c->name ? " " : "",
			 c->name ? c->name : "", c->usage);
		fprintf(f, "  %-36s %s\n", head, c->help);
	}
	fprintf(f, "\nCONNINFO defaults to $SIMPLED_DB, else the private cluster in %s.\n"
		   "exit status: 0 ok, 1 usage, 2 not found or already exists, 3 database error\n",
		SIMPLED_DEV_DB_DIR);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("simplectl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n", stderr);
	va_end(ap);
	usage(stderr);
	return EXIT_USAGE;
}

/* ---- database helpers -------------------------------------------------- */

static int ctl_connect(struct ctl *ctl)
{
	if (ctl->pg)
		return 0;
	const char *const kw[] = {"client_encoding", "dbname", "fallback_application_name", NULL};
	const char *const val[] = {"UTF8", ctl->conninfo, "simplectl", NULL};
	ctl->pg = PQconnectdbParams(kw, val, 1);
	if (!ctl->pg || PQstatus(ctl->pg) != CONNECTION_OK) {
		fprintf(stderr, "simplectl: cannot connect to the database: %s",
			ctl->pg ? PQerrorMessage(ctl->pg) : "out of memory\n");
		return -EIO;
	}
	return 0;
}

/* Runs one parameterised statement; prints the server's error and returns
 * NULL when it fails. */
static PGresult *ctl_exec(struct ctl *ctl, const char *sql, int n, const char *const *params)
{
	if (ctl_connect(ctl) != 0)
		return NULL;
	PGresult *res = PQexecParams(ctl->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		fprintf(stderr, "simplectl: database error: %s",
			res ? PQresultErrorMessage(res) : PQerrorMessage(ctl->pg));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* ---- argument checks --------------------------------------------------- */

/* RFC 3261 §25.1 user part, unescaped: unreserved / user-unreserved. */
static bool user_char_ok(unsigned char c)
{
	return isalnum(c) || (c && strchr("-_.!~*'()%&=+$,;?/", c) != NULL);
}

/* Host names and IP literals ([v6]); lower case is the canonical form. */
static bool domain_char_ok(unsigned char c)
{
	return isalnum(c) || (c && strchr("-.[]:", c) != NULL);
}

/* Splits USER@DOMAIN into bounded, checked parts; the domain is lower-cased
 * (host names are case-insensitive, and it is the digest realm, which must
 * be spelled one way). */
static int parse_address(const char *arg, char *user, char *domain)
{
	const char *at = strchr(arg, '@');
	if (!at || at == arg || !at[1]) {
		fprintf(stderr, "simplectl: expected USER@DOMAIN\n");
		return -EINVAL;
	}
	size_t ulen = (size_t)(at - arg), dlen = strlen(at + 1);
	if (ulen > USER_MAX || dlen > DOMAIN_MAX) {
		fprintf(stderr, "simplectl: user (max %d) or domain (max %d) too long\n", USER_MAX,
			DOMAIN_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < ulen; i++) {
		if (!user_char_ok((unsigned char)arg[i])) {
			fprintf(stderr, "simplectl: invalid character in user part\n");
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < dlen; i++) {
		unsigned char c = (unsigned char)at[1 + i];
		if (!domain_char_ok(c)) {
			fprintf(stderr, "simplectl: invalid character in domain\n");
			return -EINVAL;
		}
		domain[i] = (char)tolower(c);
	}
	memcpy(user, arg, ulen);
	user[ulen] = '\0';
	domain[dlen] = '\0';
	return 0;
}

static int check_domain(const char *arg)
{
	size_t n = strlen(arg);
	if (n == 0 || n > DOMAIN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!domain_char_ok((unsigned char)arg[i]))
			return -EINVAL;
	}
	return 0;
}

/* The password from argv, or from stdin when it is "-" (keeps it out of
 * the process list and shell history). */
static int get_password(const char *arg, char *out, size_t outlen)
{
	if (strcmp(arg, "-") == 0) {
		if (!fgets(out, (int)outlen, stdin)) {
			fprintf(stderr, "simplectl: no password on stdin\n");
			return -EINVAL;
		}
		size_t n = strcspn(out, "\r\n");
		if (out[n] == '\0' && n == outlen - 1) {
			fprintf(stderr, "simplectl: password too long (max %d)\n", PASSWORD_MAX);
			return -EINVAL;
		}
		out[n] = '\0';
	} else {
		if (strlen(arg) >= outlen) {
			fprintf(stderr, "simplectl: password too long (max %d)\n", PASSWORD_MAX);
			return -EINVAL;
		}
		snprintf(out, outlen, "%s", arg);
	}
	if (!out[0]) {
		fprintf(stderr, "simplectl: empty password\n");
		return -EINVAL;
	}
	for (const char *p = out; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			fprintf(stderr, "simplectl: control character in password\n");
			return -EINVAL;
		}
	}
	return 0;
}

/* HA1 for both algorithms; the realm is the domain. */
static int make_ha1(const char *user, const char *domain, const char *password,
		    char md5[AUTH_HEX_MAX], char sha256[AUTH_HEX_MAX])
{
	auth_ha1(AUTH_ALGO_MD5, user, domain, password, md5);
	auth_ha1(AUTH_ALGO_SHA256, user, domain, password, sha256);
	if (!md5[0] || !sha256[0]) {
		fprintf(stderr, "simplectl: cannot compute HA1 (digest unavailable)\n");
		return -EIO;
	}
	return 0;
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	const char *dir = SIMPLED_SCHEMA_DIR;
	if (argc == 2 && strcmp(argv[0], "--schema") == 0)
		dir = argv[1];
	else if (argc == 1 && strncmp(argv[0], "--schema=", 9) == 0)
		dir = argv[0] + 9;
	else if (argc != 0)
		return usage_error("migrate: unexpected argument %s", argv[0]);
	char err[1024];
	int rc = db_migrate(ctl->conninfo, dir, err, sizeof err);
	if (rc) {
		fprintf(stderr, "simplectl: migrate failed: %s\n", err[0] ? err : strerror(-rc));
		return EXIT_DB;
	}
	return EXIT_OK;
}

/* Shared by add and passwd: both write the two HA1 columns and notify in
 * one statement, and report whether a row was written. */
static int write_user(struct ctl *ctl, int argc, char **argv, bool create)
{
	(void)argc;
	char user[USER_MAX + 1], domain[DOMAIN_MAX + 1], password[PASSWORD_MAX + 1];
	char md5[AUTH_HEX_MAX], sha256[AUTH_HEX_MAX];
	int rc = EXIT_USAGE;
	if (parse_address(argv[0], user, domain) != 0 ||
	    get_password(argv[1], password, sizeof password) != 0)
		goto out;
	/* Shortens the time the password shows in the process list. */
	if (strcmp(argv[1], "-") != 0)
		explicit_bzero(argv[1], strlen(argv[1]));
	rc = EXIT_DB;
	if (make_ha1(user, domain, password, md5, sha256) != 0)
		goto out;

	static const char add_sql[] =
	    "WITH w AS (INSERT INTO users (username, domain, ha1_md5, ha1_sha256)"
	    " VALUES ($1, $2, $3, $4) ON CONFLICT (username, domain) DO NOTHING"
	    " RETURNING username, domain)"
	    " SELECT pg_notify('" NOTIFY_CHANNEL "', username || '@' || domain) FROM w";
	static const char passwd_sql[] =
	    "WITH w AS (UPDATE users SET ha1_md5 = $3, ha1_sha256 = $4"
	    " WHERE username = $1 AND domain = $2 RETURNING username, domain)"
	    " SELECT pg_notify('" NOTIFY_CHANNEL "', username || '@' || domain) FROM w";
	const char *params[4] = {user, domain, md5, sha256};
	PGresult *res = ctl_exec(ctl, create ? add_sql : passwd_sql, 4, params);
	if (!res)
		goto out;
	int n = PQntuples(res);
	PQclear(res);
	if (n == 0) {
		fprintf(stderr, "simplectl: %s@%s %s\n", user, domain,
			create ? "already exists" : "not found");
		rc = EXIT_NOTFOUND;
		goto out;
	}
	rc = EXIT_OK;
out:
	explicit_bzero(password, sizeof password);
	explicit_bzero(md5, sizeof md5);
	explicit_bzero(sha256, sizeof sha256);
	return rc;
}

static int cmd_user_add(struct ctl *ctl, int argc, char **argv)
{
	return write_user(ctl, argc, argv, true);
}

static int cmd_user_passwd(struct ctl *ctl, int argc, char **argv)
{
	return write_user(ctl, argc, argv, false);
}

static int cmd_user_del(struct ctl *ctl, int argc, char **argv)
{
	(void)argc;
	char user[USER_MAX + 1], domain[DOMAIN_MAX + 1];
	if (parse_address(argv[0], user, domain) != 0)
		return EXIT_USAGE;
	const char *params[2] = {user, domain};
	PGresult *res = ctl_exec(ctl,
				 "WITH d AS (DELETE FROM users WHERE username = $1 AND domain = $2"
				 " RETURNING username, domain)"
				 " SELECT pg_notify('" NOTIFY_CHANNEL "', username || '@' || domain)"
				 " FROM d",
				 2, params);
	if (!res)
		return EXIT_DB;
	int n = PQntuples(res);
	PQclear(res);
	if (n == 0) {
		fprintf(stderr, "simplectl: %s@%s not found\n", user, domain);
		return EXIT_NOTFOUND;
	}
	return EXIT_OK;
}

/* --- presence rules (table presence_rules, schema/002) ------------------ */

#define RULES_CHANNEL "simpled_rules"

/* "alice@example.test" or "sip:alice@example.test" -> "sip:alice@example.test"
 * with the domain lower-cased, as the server keys presentities. */
static int presentity_aor(const char *arg, char *out, size_t outlen)
{
	char user[USER_MAX + 1], domain[DOMAIN_MAX + 1];
	if (strncasecmp(arg, "sip:", 4) == 0)
		arg += 4;
	else if (strncasecmp(arg, "sips:", 5) == 0)
		arg += 5;
	if (parse_address(arg, user, domain) != 0)
		return -EINVAL;
	int n = snprintf(out, outlen, "sip:%s@%s", user, domain);
	return (n < 0 || (size_t)n >= outlen) ? -ENOSPC : 0;
}

/* A watcher pattern: an AOR as above, or a whole domain ("example.test"
 * or "*@example.test") stored as the lower-cased domain. */
static int watcher_pattern(const char *arg, char *out, size_t outlen)
{
	if (strncmp(arg, "*@", 2) == 0)
		arg += 2;
	if (!strchr(arg, '@')) {
		if (check_domain(arg) != 0)
			return -EINVAL;
		size_t i = 0;
		for (; arg[i] && i + 1 < outlen; i++)
			out[i] = (char)tolower((unsigned char)arg[i]);
		out[i] = '\0';
		return 0;
	}
	return presentity_aor(arg, out, outlen);
}

static const char *rule_action(const char *cmd_name, int argc, char **argv)
{
	if (strcmp(cmd_name, "allow") == 0)
		return "allow";
	if (strcmp(cmd_name, "block") == 0)
		return "block";
	if (argc < 3)
		return NULL;
	static const char *const actions[] = {"allow", "block", "polite-block", "pending"};
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		if (strcmp(argv[2], actions[i]) == 0)
			return actions[i];
	}
	if (strcmp(argv[2], "confirm") == 0)
		return "pending";
	return NULL;
}

static const char *current_command_name = "";

static int cmd_rules_set(struct ctl *ctl, int argc, char **argv)
{
	char presentity[USER_MAX + DOMAIN_MAX + 8], watcher[USER_MAX + DOMAIN_MAX + 8];
	if (presentity_aor(argv[0], presentity, sizeof presentity) != 0)
		return usage_error("rules: invalid presentity '%s' (want user@domain)", argv[0]);
	if (watcher_pattern(argv[1], watcher, sizeof watcher) != 0)
		return usage_error("rules: invalid watcher '%s' (want user@domain or a domain)", argv[1]);
	const char *action = rule_action(current_command_name, argc, argv);
	if (!action)
		return usage_error("rules: action must be allow, block, polite-block or pending");
	/* One statement: the rule and the announcement commit together, so
	 * running servers re-read exactly what was stored. */
	const char *params[3] = {presentity, watcher, action};
	PGresult *res = ctl_exec(ctl,
				 "WITH w AS (INSERT INTO presence_rules (presentity, watcher, action)"
				 " VALUES ($1, $2, $3) ON CONFLICT (presentity, watcher) DO UPDATE"
				 " SET action = EXCLUDED.action,"
				 "     updated_at = extract(epoch FROM now())::bigint"
				 " RETURNING presentity)"
				 " SELECT pg_notify('" RULES_CHANNEL "', presentity) FROM w",
				 3, params);
	if (!res)
		return EXIT_DB;
	PQclear(res);
	return EXIT_OK;
}

static int cmd_rules_del(struct ctl *ctl, int argc, char **argv)
{
	(void)argc;
	char presentity[USER_MAX + DOMAIN_MAX + 8], watcher[USER_MAX + DOMAIN_MAX + 8];
	if (presentity_aor(argv[0], presentity, sizeof presentity) != 0 ||
	    watcher_pattern(argv[1], watcher, sizeof watcher) != 0)
		return usage_error("rules del: want PRESENTITY WATCHER");
	const char *params[2] = {presentity, watcher};
	PGresult *res = ctl_exec(ctl,
				 "WITH d AS (DELETE FROM presence_rules WHERE presentity = $1 AND watcher = $2"
				 " RETURNING presentity)"
				 " SELECT pg_notify('" RULES_CHANNEL "', presentity) FROM d",
				 2, params);
	if (!res)
		return EXIT_DB;
	int n = PQntuples(res);
	PQclear(res);
	if (n == 0) {
		fprintf(stderr, "simplectl: no rule for %s watching %s\n", watcher, presentity);
		return EXIT_NOTFOUND;
	}
	return EXIT_OK;
}

static int cmd_rules_list(struct ctl *ctl, int argc, char **argv)
{
	char presentity[USER_MAX + DOMAIN_MAX + 8];
	PGresult *res;
	if (argc == 1) {
		if (presentity_aor(argv[0], presentity, sizeof presentity) != 0)
			return usage_error("rules list: invalid presentity '%s'", argv[0]);
		const char *params[1] = {presentity};
		res = ctl_exec(ctl,
			       "SELECT presentity, watcher, action FROM presence_rules"
			       " WHERE presentity = $1 ORDER BY watcher",
			       1, params);
	} else {
		res = ctl_exec(ctl,
			       "SELECT presentity, watcher, action FROM presence_rules"
			       " ORDER BY presentity, watcher",
			       0, NULL);
	}
	if (!res)
		return EXIT_DB;
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s %s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	PQclear(res);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_DB;
}

static int cmd_user_list(struct ctl *ctl, int argc, char **argv)
{
	char domain[DOMAIN_MAX + 1];
	PGresult *res;
	if (argc == 1) {
		if (check_domain(argv[0]) != 0) {
			fprintf(stderr, "simplectl: invalid domain\n");
			return EXIT_USAGE;
		}
		size_t i = 0;
		for (; argv[0][i]; i++)
			domain[i] = (char)tolower((unsigned char)argv[0][i]);
		domain[i] = '\0';
		const char *params[1] = {domain};
		res = ctl_exec(ctl,
			       "SELECT username, domain FROM users WHERE domain = $1"
			       " ORDER BY username",
			       1, params);
	} else {
		res = ctl_exec(ctl, "SELECT username, domain FROM users ORDER BY domain, username", 0,
			       NULL);
	}
	if (!res)
		return EXIT_DB;
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s@%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	if (fflush(stdout) != 0)
		return EXIT_DB;
	return EXIT_OK;
}

/* ---- main -------------------------------------------------------------- */

/* $SIMPLED_DB, else the dev-db.sh cluster (its port file says which port
 * it was started on). */
static const char *default_conninfo(char *buf, size_t len)
{
	const char *env = getenv("SIMPLED_DB");
	if (env && *env)
		return env;
	unsigned port = 5432;
	FILE *f = fopen(SIMPLED_DEV_DB_DIR "/port", "r");
	if (f) {
		unsigned p;
		if (fscanf(f, "%u", &p) == 1 && p > 0 && p < 65536)
			port = p;
		fclose(f);
	}
	snprintf(buf, len, "host=%s/run port=%u dbname=simpled user=postgres", SIMPLED_DEV_DB_DIR,
		 port);
	return buf;
}

int main(int argc, char **argv)
{
	struct ctl ctl = {0};
	char defbuf[512];
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--db") == 0) {
			if (++i >= argc)
				return usage_error("--db needs a value");
			ctl.conninfo = argv[i];
		} else if (strncmp(argv[i], "--db=", 5) == 0) {
			ctl.conninfo = argv[i] + 5;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_OK;
		} else {
			return usage_error("unknown option %s", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!ctl.conninfo)
		ctl.conninfo = default_conninfo(defbuf, sizeof defbuf);

	const char *group = argv[i++];
	const struct ctl_cmd *cmd = NULL;
	bool group_known = false;
	for (size_t k = 0; k < NCOMMANDS && !cmd; k++) {
		const struct ctl_cmd *c = &commands[k];
		if (strcmp(c->group, group) != 0)
			continue;
		group_known = true;
		if (!c->name)
			cmd = c;
		else if (i < argc && strcmp(c->name, argv[i]) == 0)
			cmd = c;
	}
	if (!cmd && group_known)
		return usage_error("%s: unknown or missing subcommand", group);
	if (!cmd)
		return usage_error("unknown command %s", group);
	if (cmd->name)
		i++;
	int nargs = argc - i;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		fprintf(stderr, "usage: simplectl %s%s%s %s\n", cmd->group, cmd->name ? " " : "",
			cmd->name ? cmd->name : "", cmd->usage);
		return EXIT_USAGE;
	}
	/* db_migrate reports each file it applies at INFO, on stderr. */
	log_set_level(LOG_INFO);
	current_command_name = cmd->name ? cmd->name : "";
	int rc = cmd->run(&ctl, nargs, argv + i);
	if (ctl.pg)
		PQfinish(ctl.pg);
	return rc;
}
