/* simplectl messages list|purge (see ctl_messages.h). */
#include "messaging/ctl_messages.h"
#include "server/db/dbctl.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_OK = DBCTL_OK, EXIT_USAGE = DBCTL_USAGE, EXIT_NOTFOUND = DBCTL_NOTFOUND, EXIT_DB = DBCTL_DB };

/* "user@domain" or "sip:user@domain" -> "sip:user@domain" (host
 * lower-cased, as the server keys mailboxes). */
static int to_aor(const char *in, char *out, size_t len)
{
	if (strncmp(in, "sip:", 4) == 0)
		in += 4;
	const char *at = strchr(in, '@');
	if (!at || at == in || !at[1] || strchr(at + 1, '@'))
		return -1;
	for (const char *p = in; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '<' || *p == '>')
			return -1;
	}
	int n = snprintf(out, len, "sip:%s", in);
	if (n < 0 || (size_t)n >= len)
		return -1;
	for (char *p = strchr(out, '@'); *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}



/* One line per stored message, oldest first:
 * ID<TAB>RECEIVED (UTC)<TAB>EXPIRES (UTC)<TAB>FROM<TAB>CONTENT-TYPE<TAB>BYTES */
int msgctl_list(const char *conninfo, int argc, char **argv)
{
	char aor[600];
	if (argc != 1 || to_aor(argv[0], aor, sizeof aor) != 0) {
		fprintf(stderr, "usage: simplectl messages list USER@DOMAIN\n");
		return EXIT_USAGE;
	}
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	const char *params[1] = {aor};
	PGresult *res = dbctl_run(pg,
			    "SELECT id, received_at, expires_at, sender, coalesce(content_type, '-'),"
			    " length(body) FROM messages WHERE recipient = $1 ORDER BY id",
			    1, params);
	if (!res) {
		PQfinish(pg);
		return EXIT_DB;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		char rec[32], exp[32];
		time_t tr = (time_t)strtoll(PQgetvalue(res, i, 1), NULL, 10);
		time_t te = (time_t)strtoll(PQgetvalue(res, i, 2), NULL, 10);
		struct tm tm;
		strftime(rec, sizeof rec, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tr, &tm));
		strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&te, &tm));
		printf("%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(res, i, 0), rec, exp, PQgetvalue(res, i, 3),
		       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
	}
	PQclear(res);
	PQfinish(pg);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_DB;
}

/* Deletes every stored message of the user; prints how many. */
int msgctl_purge(const char *conninfo, int argc, char **argv)
{
	char aor[600];
	if (argc != 1 || to_aor(argv[0], aor, sizeof aor) != 0) {
		fprintf(stderr, "usage: simplectl messages purge USER@DOMAIN\n");
		return EXIT_USAGE;
	}
	PGconn *pg = dbctl_connect(conninfo);
	if (!pg)
		return EXIT_DB;
	const char *params[1] = {aor};
	PGresult *res = dbctl_run(pg,
			    "WITH d AS (DELETE FROM messages WHERE recipient = $1 RETURNING 1)"
			    " SELECT count(*), pg_notify('simpled_messages', $1) FROM d",
			    1, params);
	if (!res) {
		PQfinish(pg);
		return EXIT_DB;
	}
	long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(pg);
	printf("%ld message(s) purged\n", n);
	return n > 0 ? EXIT_OK : EXIT_NOTFOUND;
}
