/* Schema migrations: applies schema/NNN_name.sql files in number order.
 *
 * Synchronous libpq on purpose: this runs at start-up, before the loop
 * serves anything, and from simplectl; never on the serving loop.
 *
 * Table schema_version holds one row per applied file.  A file whose
 * number is greater than the highest applied version is run in one
 * transaction together with the insert of its version row, so a file is
 * either applied and recorded or not at all.  A session-level advisory
 * lock serialises nodes that start at the same moment: the second one
 * waits, then finds nothing left to do.
 *
 * A migration file must not contain transaction control (BEGIN, COMMIT)
 * nor statements that refuse to run in a transaction block (CREATE INDEX
 * CONCURRENTLY, VACUUM). */
#include "server/db/db.h"

#include "server/base/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "db"

/* pg_advisory_lock key shared by every simpled node: "simpled" in ASCII. */
#define MIGRATE_LOCK_KEY "32485541080229220"
/* A migration is a text file written by us; anything larger is a mistake. */
#define MIGRATE_MAX_FILE (16u * 1024 * 1024)
#define MIGRATE_MAX_FILES 10000

struct migration {
	int version;
	char name[256];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* libpq messages end in a newline; the caller prints its own. */
	size_t n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
}

/* "NNN_name.sql": digits, '_', a non-empty name, ".sql".  Returns the
 * number, or -1 when the name does not match (the file is ignored). */
static int parse_name(const char *name)
{
	size_t len = strlen(name);
	if (len < 7 || len >= sizeof(((struct migration *)0)->name) ||
	    strcmp(name + len - 4, ".sql") != 0)
		return -1;
	long v = 0;
	size_t i = 0;
	for (; isdigit((unsigned char)name[i]); i++) {
		v = v * 10 + (name[i] - '0');
		if (v > INT_MAX)
			return -1;
	}
	if (i == 0 || name[i] != '_' || i + 1 >= len - 4)
		return -1;
	return (int)v;
}

static int cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

/* Lists and sorts the migrations in dir.  Two files with one number are an
 * error: which one would win depends on luck. */
static int list_migrations(const char *dir, struct migration **out, size_t *nout, char *err,
			   size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		set_err(err, errlen, "cannot open schema directory %s: %s", dir, strerror(e));
		return -e;
	}
	struct migration *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		int version = parse_name(de->d_name);
		if (version < 0)
			continue;
		if (n == cap) {
			if (cap >= MIGRATE_MAX_FILES) {
				set_err(err, errlen, "too many files in %s", dir);
				rc = -E2BIG;
				goto out;
			}
			cap = cap ? cap * 2 : 16;
			struct migration *nv = realloc(v, cap * sizeof *nv);
			if (!nv) {
				rc = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n].version = version;
		snprintf(v[n].name, sizeof v[n].name, "%s", de->d_name);
		n++;
	}
	qsort(v, n, sizeof *v, cmp_migration);
	for (size_t i = 1; i < n; i++) {
		if (v[i].version == v[i - 1].version) {
			set_err(err, errlen, "two migrations numbered %d: %s and %s", v[i].version,
				v[i - 1].name, v[i].name);
			rc = -EINVAL;
			goto out;
		}
	}
out:
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}

static char *read_file(const char *path, char *err, size_t errlen, int *rc)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		*rc = -errno;
		set_err(err, errlen, "cannot open %s: %s", path, strerror(-*rc));
		return NULL;
	}
	char *data = NULL;
	size_t len = 0, cap = 0;
	*rc = 0;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if (cap > MIGRATE_MAX_FILE + 1) {
				set_err(err, errlen, "%s is larger than %u bytes", path, MIGRATE_MAX_FILE);
				*rc = -EFBIG;
				break;
			}
			char *nd = realloc(data, cap);
			if (!nd) {
				*rc = -ENOMEM;
				break;
			}
			data = nd;
		}
		size_t got = fread(data + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				*rc = -EIO;
				set_err(err, errlen, "cannot read %s", path);
			}
			break;
		}
	}
	fclose(f);
	if (*rc) {
		free(data);
		return NULL;
	}
	data[len] = '\0';
	if (strlen(data) != len) {
		set_err(err, errlen, "%s contains a NUL byte", path);
		free(data);
		*rc = -EINVAL;
		return NULL;
	}
	return data;
}

/* Runs one command; returns 0 or -EPROTO / -EIO with the server's message. */
static int exec_ok(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = 0;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		set_err(err, errlen, "%s: %s", what,
			res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
		rc = PQstatus(pg) == CONNECTION_BAD ? -EIO : -EPROTO;
	}
	PQclear(res);
	return rc;
}

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	LOGD(MOD, "migrate: %.*s", (int)strcspn(message, "\n"), message);
}

static int apply_one(PGconn *pg, const char *dir, const struct migration *m, char *err,
		     size_t errlen)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, m->name) >= sizeof path) {
		set_err(err, errlen, "path too long: %s/%s", dir, m->name);
		return -ENAMETOOLONG;
	}
	int rc;
	char *sql = read_file(path, err, errlen, &rc);
	if (!sql)
		return rc;
	char version[16];
	snprintf(version, sizeof version, "%d", m->version);
	const char *params[1] = {version};

	rc = exec_ok(pg, PQexec(pg, "BEGIN"), "BEGIN", err, errlen);
	if (!rc)
		rc = exec_ok(pg, PQexec(pg, sql), m->name, err, errlen);
	if (!rc)
		rc = exec_ok(pg,
			     PQexecParams(pg, "INSERT INTO schema_version (version) VALUES ($1::int)",
					  1, NULL, params, NULL, NULL, 0),
			     "recording the version", err, errlen);
	if (!rc)
		rc = exec_ok(pg, PQexec(pg, "COMMIT"), "COMMIT", err, errlen);
	if (rc && PQstatus(pg) == CONNECTION_OK)
		PQclear(PQexec(pg, "ROLLBACK"));
	free(sql);
	if (!rc)
		LOGI(MOD, "applied migration %s", m->name);
	return rc;
}

int db_migrate(const char *conninfo, const char *schema_dir, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!conninfo || !schema_dir) {
		set_err(err, errlen, "no connection string or schema directory");
		return -EINVAL;
	}
	struct migration *files = NULL;
	size_t nfiles = 0;
	int rc = list_migrations(schema_dir, &files, &nfiles, err, errlen);
	if (rc)
		return rc;

	const char *const kw[] = {"client_encoding", "dbname", "fallback_application_name", NULL};
	const char *const val[] = {"UTF8", conninfo, "simpled-migrate", NULL};
	PGconn *pg = PQconnectdbParams(kw, val, 1);
	bool locked = false;
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		set_err(err, errlen, "cannot connect: %s", pg ? PQerrorMessage(pg) : "out of memory");
		rc = -EIO;
		goto out;
	}
	PQsetNoticeProcessor(pg, quiet_notice, NULL);

	rc = exec_ok(pg, PQexec(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")"),
		     "taking the migration lock", err, errlen);
	if (rc)
		goto out;
	locked = true;
	rc = exec_ok(pg,
		     PQexec(pg, "CREATE TABLE IF NOT EXISTS schema_version ("
				" version int PRIMARY KEY,"
				" applied_at timestamptz NOT NULL DEFAULT now())"),
		     "creating schema_version", err, errlen);
	if (rc)
		goto out;

	PGresult *res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = exec_ok(pg, res, "reading schema_version", err, errlen);
		if (!rc)
			rc = -EPROTO;
		goto out;
	}
	int current = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);

	int applied = 0;
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i].version <= current)
			continue;
		rc = apply_one(pg, schema_dir, &files[i], err, errlen);
		if (rc)
			goto out;
		current = files[i].version;
		applied++;
	}
	if (nfiles && files[nfiles - 1].version < current)
		LOGW(MOD, "database schema version %d is newer than the newest file (%d) in %s",
		     current, files[nfiles - 1].version, schema_dir);
	LOGI(MOD, "schema at version %d (%d migration%s applied)", current, applied,
	     applied == 1 ? "" : "s");
out:
	if (locked && PQstatus(pg) == CONNECTION_OK)
		PQclear(PQexec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
	PQfinish(pg);
	free(files);
	return rc;
}

/* Start-up loads share this: every module that keeps a table in memory
 * reads it once, synchronously, before the loop serves. */
int db_load_sync(const char *conninfo, const char *what, const char *sql, int nparams,
		 const char *const *params, int (*rows)(void *ctx, PGresult *res), void *ctx)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		LOGE("db", "cannot load %s: %s", what, PQerrorMessage(c));
		PQfinish(c);
		return -EIO;
	}
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		LOGE("db", "cannot load %s: %s", what, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return -EIO;
	}
	int rc = rows(ctx, r);
	PQclear(r);
	PQfinish(c);
	return rc;
}
