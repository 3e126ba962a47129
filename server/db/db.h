/* Asynchronous PostgreSQL access on the libuv loop.
 *
 * A small pool of non-blocking libpq connections, each watched by a
 * uv_poll_t (PQconnectStartParams/PQconnectPoll to connect, PQsendQuery*
 * then PQflush/PQconsumeInput to run).  Statements are registered once
 * with db_prepare() and prepared on every connection as it comes up.
 * Queries wait in a bounded FIFO when every connection is busy.
 *
 * Callback contract: when db_exec() returns 0 the callback runs exactly
 * once, later, from the loop (never from inside db_exec); when it returns
 * an error the callback never runs.  The result is borrowed: it is
 * cleared when the callback returns. */
#ifndef SD_DB_H
#define SD_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* err: 0 on PGRES_COMMAND_OK / PGRES_TUPLES_OK;
 *      -EIO when the connection broke (the query may or may not have run);
 *      -EPROTO when the server reported an SQL error (res holds it);
 *      -ECANCELED at shutdown.  res may be NULL when err != 0. */
typedef void (*db_cb)(void *ctx, int err, PGresult *res);

typedef struct db_options {
	const char *conninfo;  /* libpq connection string */
	unsigned nconns;       /* pool size (default 4) */
	unsigned max_queue;    /* queued queries beyond which db_exec says -EAGAIN */
	unsigned reconnect_min_ms, reconnect_max_ms; /* backoff bounds */
} db_options_t;

int db_init(uv_loop_t *loop, const db_options_t *opts);

/* Registers a named statement; call before or after db_init (statements
 * are prepared on every connection when it connects). Returns 0 or -errno. */
int db_prepare(const char *name, const char *sql);

/* Runs a prepared statement with text parameters (NULL = SQL NULL).
 * params are copied.  Returns 0 (queued), -ENOTCONN when no connection is
 * up (answer 503), -EAGAIN when the queue is full (answer 503). */
int db_exec(const char *stmt, int nparams, const char *const *params, db_cb cb, void *ctx);

/* True when at least one connection is up and ready. */
bool db_is_up(void);
/* Connections up and not running a query right now. */
unsigned db_idle_count(void);
/* Queries waiting for a connection. */
unsigned db_queue_length(void);

/* Called from the loop (never from inside a db_* call) when the pool goes
 * up (first connection ready) or down (last connection lost), so callers
 * can wait for the database at start-up and re-read state after an outage
 * (NOTIFYs sent while it was down are lost).  One callback; NULL removes
 * it; db_shutdown clears it and no state change is reported after it. */
typedef void (*db_state_cb)(void *ctx, bool up);
void db_set_state_cb(db_state_cb cb, void *ctx);

/* LISTEN on a channel over a dedicated connection; cb gets each payload
 * (borrowed).  Re-LISTENs after a reconnect. */
typedef void (*db_notify_cb)(void *ctx, const char *channel, const char *payload);
int db_listen(const char *channel, db_notify_cb cb, void *ctx);

/* Stops accepting new queries, lets queued and in-flight ones finish, then
 * closes every connection and calls done (once). */
void db_shutdown(void (*done)(void *arg), void *arg);

/* Builds a PostgreSQL text-array literal ({"a","b",NULL}) for batching many
 * rows into one statement (... FROM unnest($1::text[], ...)).  The result
 * is appended to a buf_t; values may be NULL. */
struct buf;
void db_array_begin(struct buf *b);
void db_array_add(struct buf *b, const char *value);
void db_array_end(struct buf *b);

/* Runs one parameterised SELECT synchronously on a connection of its
 * own (start-up loads only, before the loop serves) and hands the rows to
 * rows(ctx, res).  what names the data in the error log line ("rules").
 * Returns 0, -EIO (connection or query failed, logged), or what rows
 * returned. */
int db_load_sync(const char *conninfo, const char *what, const char *sql, int nparams,
		 const char *const *params, int (*rows)(void *ctx, PGresult *res), void *ctx);

/* Applies schema/NNN_*.sql files newer than the version recorded in table
 * schema_version, each in its own transaction, synchronously (start-up
 * and simplectl only, never on the serving loop).  Returns 0 or -errno,
 * with a message in err (may be NULL). */
int db_migrate(const char *conninfo, const char *schema_dir, char *err, size_t errlen);

#endif
