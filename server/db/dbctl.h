/* Synchronous libpq helpers for simplectl's command modules (never the
 * serving loop): one connection per command, errors printed once on
 * stderr as "simplectl: ...". */
#ifndef SD_DBCTL_H
#define SD_DBCTL_H

#include <libpq-fe.h>
#include <stdbool.h>

/* simplectl's exit statuses, shared by every command module. */
enum { DBCTL_OK = 0, DBCTL_USAGE = 1, DBCTL_NOTFOUND = 2, DBCTL_DB = 3 };

/* Connects with client_encoding UTF8; NULL (after printing why) on
 * failure. */
PGconn *dbctl_connect(const char *conninfo);
/* Runs one parameterised statement; the result, or NULL after printing
 * the error. */
PGresult *dbctl_run(PGconn *pg, const char *sql, int nparams, const char *const *params);
/* dbctl_run for statements whose result is not needed. */
bool dbctl_exec(PGconn *pg, const char *sql, int nparams, const char *const *params);

#endif
