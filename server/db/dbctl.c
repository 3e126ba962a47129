/* Synchronous libpq helpers for simplectl (see dbctl.h). */
#include "server/db/dbctl.h"

#include <stdio.h>

PGconn *dbctl_connect(const char *conninfo)
{
	const char *const kw[] = {"client_encoding", "dbname", "fallback_application_name", NULL};
	const char *const val[] = {"UTF8", conninfo, "simplectl", NULL};
	PGconn *pg = PQconnectdbParams(kw, val, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "simplectl: cannot connect to the database: %s",
			pg ? PQerrorMessage(pg) : "out of memory\n");
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

PGresult *dbctl_run(PGconn *pg, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		fprintf(stderr, "simplectl: database error: %s",
			res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
		PQclear(res);
		return NULL;
	}
	return res;
}

bool dbctl_exec(PGconn *pg, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = dbctl_run(pg, sql, nparams, params);
	PQclear(r);
	return r != NULL;
}
