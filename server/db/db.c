/* Asynchronous PostgreSQL pool on the libuv loop (see db.h for the API).
 *
 * One pool per process: nconns query connections plus, once somebody calls
 * db_listen(), one dedicated LISTEN connection.  Every connection is a small
 * state machine driven by a uv_poll_t on PQsocket():
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> SETUP --prepared--> IDLE
 *     ^                 |                              |      <--result--  |
 *     |                 |                              |                 send
 *     +----broken-------+------------------------------+---- BUSY <-------+
 *
 *   CONNECTING  PQconnectStartParams/PQconnectPoll; PQsocket() is read again
 *               after every step and the poll handle re-created when the
 *               socket changed (libpq opens a new one per address it tries).
 *   SETUP       PQsendPrepare of every registered statement, one after the
 *               other (the listener sends its LISTENs instead).  A connection
 *               counts as "up" only after its first SETUP, and it prepares any
 *               statement registered later before it takes another query.
 *   IDLE/BUSY   one query at a time: PQsendQueryPrepared, then PQflush with
 *               UV_WRITABLE watched only while PQflush returns 1; on
 *               UV_READABLE PQconsumeInput, then PQgetResult until PQisBusy or
 *               NULL.  The callback borrows the result, then we PQclear it.
 *   broken      the in-flight query fails with -EIO, the poll handle is
 *               closed (freed in its close callback), PQfinish, and a
 *               uv_timer reconnects after an exponential backoff between
 *               reconnect_min_ms and reconnect_max_ms, reset once a connection
 *               is up again.  A connection that does not get up within
 *               DB_CONNECT_TIMEOUT_MS is treated as broken (libpq ignores
 *               connect_timeout under PQconnectPoll).
 *
 * Queries wait in one FIFO (bounded by max_queue) while every connection is
 * busy; an idle connection always takes the head, so queries start in the
 * order they were submitted.  While no query connection is up db_exec
 * refuses with -ENOTCONN, and when the last one drops the queue is failed
 * with -EIO at once rather than held for an unknown time.
 *
 * Where callbacks run.  User code runs only from the top of a libuv
 * callback, never from inside db_exec, db_prepare, db_listen or db_shutdown:
 *   - a query's result is delivered from the poll callback of its connection;
 *   - failures without a result (-EIO, -ECANCELED) and pool state changes are
 *     delivered from a uv_idle_t on the next loop turn (the "deferred" list),
 *     because they are often discovered inside db_exec (a send that fails);
 *   - shutdown progress is also made from that idle callback, so nothing is
 *     closed under the feet of a callback that is still running.
 * After a user callback returns, the code re-checks its connection, which the
 * callback may have broken (a db_exec whose send failed).
 *
 * Limits known and accepted: PQconnectStartParams resolves host names
 * synchronously; use a unix socket, hostaddr= or a local resolver in
 * production.  Parameter values are never logged (they may hold secrets):
 * log lines name the statement and carry libpq's error message. */
#include "server/db/db.h"

#include "server/base/buf.h"
#include "server/base/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MOD "db"

#define DB_DEFAULT_NCONNS 4
#define DB_MAX_NCONNS 64
#define DB_DEFAULT_MAX_QUEUE 1024
#define DB_DEFAULT_RECONNECT_MIN_MS 100
#define DB_DEFAULT_RECONNECT_MAX_MS 5000
#define DB_CONNECT_TIMEOUT_MS 10000
/* The protocol carries the parameter count in 16 bits. */
#define DB_MAX_PARAMS 65535
/* PostgreSQL truncates identifiers (statement and channel names) to
 * NAMEDATALEN - 1 = 63 bytes; longer names would silently collide. */
#define DB_MAX_NAME 63

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A registered statement.  The registry is append-only and survives
 * db_shutdown, so a connection's "prepared so far" is a prefix length. */
struct db_stmt {
	char *name;
	char *sql;
};

/* One query, from db_exec to its callback.  Parameters are copied into the
 * same allocation, right after the struct. */
struct db_query {
	struct db_query *next;
	const struct db_stmt *stmt;
	int nparams;
	const char *const *params;
	db_cb cb;
	void *ctx;
	int err; /* for a deferred failure */
};

struct db_listen_reg {
	char *channel;
	db_notify_cb cb;
	void *ctx;
	bool sent;      /* in the LISTEN batch now running */
	bool listening; /* LISTEN done on the current listener connection */
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_SETUP, CONN_IDLE, CONN_BUSY };

/* The poll handle lives in its own allocation: it must be re-created when
 * libpq changes sockets, and its memory may be reused only in its close
 * callback, possibly after the connection has moved on. */
struct db_poll {
	uv_poll_t handle;
	struct db_conn *conn;
};

struct db_conn {
	unsigned id;
	bool listener;
	enum conn_state state;
	bool up;       /* completed its first SETUP (counted in pool.nup) */
	bool flushing; /* PQflush returned 1: watch UV_WRITABLE */
	bool closed;   /* closed for good by db_shutdown */
	PGconn *pg;
	struct db_poll *poll;
	int poll_fd;
	dev_t poll_dev;
	ino_t poll_ino;
	int poll_events;
	uv_timer_t timer; /* reconnect backoff, then connect timeout */
	unsigned backoff_ms;
	size_t nprepared;    /* registry prefix prepared on this connection */
	struct db_query *q;  /* in flight (BUSY) */
	PGresult *res;       /* result being collected for the command in flight */
};

static struct {
	struct db_stmt **v;
	size_t n, cap;
} stmts;

static struct {
	struct db_listen_reg *v;
	size_t n, cap;
} listens;

static struct {
	uv_loop_t *loop;
	bool inited;
	bool stopping;  /* db_shutdown called */
	bool finishing; /* every connection closed; closing the handles */
	char *conninfo;
	unsigned nconns, max_queue, min_ms, max_ms;
	struct db_conn *conns; /* nconns query connections, then the listener */
	unsigned nup;
	struct db_query *qhead, *qtail;
	unsigned qlen;
	struct db_query *dhead, *dtail; /* deferred failures */
	uv_idle_t idle;
	unsigned nclosing; /* handles whose close callback is pending */
	bool reported_up;  /* last state given to state_cb */
	bool fail_logged;  /* "cannot connect" logged for this outage */
	bool ever_up;
	void (*done)(void *arg);
	void *done_arg;
	db_state_cb state_cb;
	void *state_ctx;
} pool;

static void conn_start(struct db_conn *c);
static void conn_broken(struct db_conn *c, const char *why);
static void conn_kick(struct db_conn *c);
static void on_poll(uv_poll_t *h, int status, int events);
static void on_idle(uv_idle_t *h);

static struct db_conn *listener_conn(void) { return &pool.conns[pool.nconns]; }

/* libpq messages end in a newline and may span lines; the log wants one
 * line, so newlines become " / " and the trailing one goes. */
static void clean_message(const char *in, char *out, size_t outlen)
{
	size_t j = 0;
	if (!in)
		in = "";
	for (size_t i = 0; in[i] && j + 4 < outlen; i++) {
		if (in[i] == '\n') {
			/* Continuation lines are indented with a tab. */
			while (in[i + 1] == '\t' || in[i + 1] == ' ')
				i++;
			if (in[i + 1] == '\0')
				break;
			memcpy(out + j, " / ", 3);
			j += 3;
		} else if (in[i] == '\t') {
			out[j++] = ' ';
		} else {
			out[j++] = in[i];
		}
	}
	out[j] = '\0';
}

static void conn_errmsg(const struct db_conn *c, char *out, size_t outlen)
{
	clean_message(c->pg ? PQerrorMessage(c->pg) : "", out, outlen);
	if (!out[0])
		snprintf(out, outlen, "connection closed");
}

static const char *conn_kind(const struct db_conn *c) { return c->listener ? "listener" : "connection"; }

static void on_notice(void *arg, const char *message)
{
	struct db_conn *c = arg;
	char msg[512];
	clean_message(message, msg, sizeof msg);
	LOGD(MOD, "%s %u: %s", conn_kind(c), c->id, msg);
}

/* Deferred work: failures without a result, state changes, shutdown steps.
 * All of it runs from on_idle, at the top of a loop turn. */
static void schedule_idle(void)
{
	if (!pool.finishing)
		uv_idle_start(&pool.idle, on_idle);
}

static void defer_fail(struct db_query *q, int err)
{
	q->err = err;
	q->next = NULL;
	if (pool.dtail)
		pool.dtail->next = q;
	else
		pool.dhead = q;
	pool.dtail = q;
	schedule_idle();
}

static void fail_queue(int err)
{
	while (pool.qhead) {
		struct db_query *q = pool.qhead;
		pool.qhead = q->next;
		defer_fail(q, err);
	}
	pool.qtail = NULL;
	pool.qlen = 0;
}

static struct db_query *queue_pop(void)
{
	struct db_query *q = pool.qhead;
	if (q) {
		pool.qhead = q->next;
		if (!pool.qhead)
			pool.qtail = NULL;
		pool.qlen--;
		q->next = NULL;
	}
	return q;
}

static void on_handle_closed(uv_handle_t *h);

static void on_poll_closed(uv_handle_t *h)
{
	free(container_of((uv_poll_t *)h, struct db_poll, handle));
	on_handle_closed(NULL);
}

/* Stops watching the socket and closes the connection.  The poll handle is
 * closed first: uv_close removes the fd from epoll right away, before
 * PQfinish closes it (and the number could be reused). */
static void conn_close_pg(struct db_conn *c)
{
	if (c->poll) {
		uv_close((uv_handle_t *)&c->poll->handle, on_poll_closed);
		pool.nclosing++;
		c->poll = NULL;
		c->poll_events = 0;
	}
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (c->res) {
		PQclear(c->res);
		c->res = NULL;
	}
	c->flushing = false;
	c->nprepared = 0;
}

/* Asks the poll handle for events (a no-op when they do not change). */
static int conn_set_events(struct db_conn *c, int events)
{
	if (events != c->poll_events) {
		int err = uv_poll_start(&c->poll->handle, events, on_poll);
		if (err)
			return err;
		c->poll_events = events;
	}
	return 0;
}

/* Makes sure the poll handle watches the connection's current socket, then
 * asks for events; called after every PQconnectPoll step.  A socket is
 * identified by fd number and inode: libpq may close one socket and open
 * another (next host or address, SSL/GSS fallback, target_session_attrs)
 * that gets the same number, and a watch kept on the old one would never
 * fire, or make epoll_ctl fail. */
static int conn_watch(struct db_conn *c, int events)
{
	int fd = PQsocket(c->pg);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		return -EBADF;
	if (!c->poll || c->poll_fd != fd || c->poll_dev != st.st_dev || c->poll_ino != st.st_ino) {
		LOGD(MOD, "%s %u: watching socket %d (inode %lu)", conn_kind(c), c->id, fd,
		     (unsigned long)st.st_ino);
		if (c->poll) {
			uv_close((uv_handle_t *)&c->poll->handle, on_poll_closed);
			pool.nclosing++;
			c->poll = NULL;
		}
		struct db_poll *p = calloc(1, sizeof *p);
		if (!p)
			return -ENOMEM;
		int err = uv_poll_init(pool.loop, &p->handle, fd);
		if (err) {
			free(p);
			return err;
		}
		p->conn = c;
		c->poll = p;
		c->poll_fd = fd;
		c->poll_dev = st.st_dev;
		c->poll_ino = st.st_ino;
		c->poll_events = 0;
	}
	return conn_set_events(c, events);
}

/* Pushes out what libpq has buffered; watches UV_WRITABLE only while some
 * output is still pending.  Returns 0, or -EIO after breaking c. */
static int conn_flush(struct db_conn *c)
{
	int r = PQflush(c->pg);
	if (r < 0) {
		conn_broken(c, "flush failed");
		return -EIO;
	}
	c->flushing = r == 1;
	/* The socket no longer changes once connected. */
	if (conn_set_events(c, UV_READABLE | (c->flushing ? UV_WRITABLE : 0)) != 0) {
		conn_broken(c, "cannot watch the socket");
		return -EIO;
	}
	return 0;
}

static void log_up(void)
{
	if (pool.ever_up)
		LOGI(MOD, "database back up: connection to PostgreSQL restored");
	else
		LOGI(MOD, "database up: connected to PostgreSQL (pool of %u)", pool.nconns);
	pool.ever_up = true;
	pool.fail_logged = false;
}

static void conn_set_up(struct db_conn *c)
{
	uv_timer_stop(&c->timer);
	c->up = true;
	c->backoff_ms = pool.min_ms;
	if (c->listener) {
		LOGI(MOD, "listener up (%zu channel%s)", listens.n, listens.n == 1 ? "" : "s");
		return;
	}
	if (pool.nup++ == 0) {
		log_up();
		schedule_idle(); /* report the state change */
	}
}

static void conn_send_query(struct db_conn *c, struct db_query *q)
{
	c->q = q;
	c->state = CONN_BUSY;
	if (!PQsendQueryPrepared(c->pg, q->stmt->name, q->nparams, q->params, NULL, NULL, 0)) {
		conn_broken(c, "send failed");
		return;
	}
	conn_flush(c);
}

static void conn_send_prepare(struct db_conn *c)
{
	const struct db_stmt *s = stmts.v[c->nprepared];
	c->state = CONN_SETUP;
	if (!PQsendPrepare(c->pg, s->name, s->sql, 0, NULL)) {
		conn_broken(c, "prepare send failed");
		return;
	}
	conn_flush(c);
}

/* The listener LISTENs on every channel not yet listened on this
 * connection, in one simple-protocol query. */
static void listener_kick(struct db_conn *c)
{
	buf_t sql;
	buf_init(&sql, 0);
	for (size_t i = 0; i < listens.n; i++) {
		struct db_listen_reg *r = &listens.v[i];
		if (r->listening || r->sent)
			continue;
		char *ident = PQescapeIdentifier(c->pg, r->channel, strlen(r->channel));
		if (!ident)
			continue;
		buf_printf(&sql, "LISTEN %s;", ident);
		PQfreemem(ident);
		r->sent = true;
	}
	if (sql.err) {
		LOGE(MOD, "listener: cannot build LISTEN: %s", strerror(-sql.err));
		for (size_t i = 0; i < listens.n; i++)
			listens.v[i].sent = false;
		buf_free(&sql);
		return;
	}
	if (sql.len == 0) {
		buf_free(&sql);
		if (!c->up)
			conn_set_up(c);
		return;
	}
	c->state = CONN_SETUP;
	int ok = PQsendQuery(c->pg, buf_cstr(&sql));
	buf_free(&sql);
	if (!ok) {
		conn_broken(c, "LISTEN send failed");
		return;
	}
	conn_flush(c);
}

/* Gives an idle connection its next job: statements it has not prepared
 * yet, then the head of the queue. */
static void conn_kick(struct db_conn *c)
{
	if (c->state != CONN_IDLE || c->closed)
		return;
	if (c->listener) {
		listener_kick(c);
		return;
	}
	if (c->nprepared < stmts.n) {
		conn_send_prepare(c);
		return;
	}
	if (!c->up)
		conn_set_up(c);
	struct db_query *q = queue_pop();
	if (q)
		conn_send_query(c, q);
	else if (pool.stopping)
		schedule_idle(); /* an idle connection can close now */
}

static void dispatch(void)
{
	for (unsigned i = 0; i < pool.nconns && pool.qhead; i++) {
		struct db_conn *c = &pool.conns[i];
		if (c->up && c->state == CONN_IDLE)
			conn_kick(c);
	}
}

static void on_reconnect(uv_timer_t *t)
{
	struct db_conn *c = container_of(t, struct db_conn, timer);
	if (!pool.stopping && c->state == CONN_DOWN)
		conn_start(c);
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct db_conn *c = container_of(t, struct db_conn, timer);
	if (c->state == CONN_CONNECTING || (c->state == CONN_SETUP && !c->up))
		conn_broken(c, "connect timed out");
}

/* A connection failed or broke: fail what it was running, close it, and
 * try again later. */
static void conn_broken(struct db_conn *c, const char *why)
{
	char msg[512];
	conn_errmsg(c, msg, sizeof msg);
	bool was_up = c->up;

	if (c->q) {
		LOGD(MOD, "connection %u: %s failed: connection broken", c->id, c->q->stmt->name);
		defer_fail(c->q, -EIO);
		c->q = NULL;
	}
	conn_close_pg(c);
	uv_timer_stop(&c->timer);
	c->state = CONN_DOWN;
	c->up = false;

	if (c->listener) {
		for (size_t i = 0; i < listens.n; i++)
			listens.v[i].sent = listens.v[i].listening = false;
	}
	if (was_up) {
		LOGW(MOD, "%s %u lost (%s): %s", conn_kind(c), c->id, why, msg);
		c->backoff_ms = pool.min_ms;
		if (!c->listener && --pool.nup == 0) {
			if (!pool.stopping)
				LOGW(MOD, "database down: no connection to PostgreSQL left; queries "
					  "are refused (503) until it is back; %u queued failed",
				     pool.qlen);
			/* Nobody can run them now; holding them would leave their
			 * callers waiting for an outage of unknown length. */
			fail_queue(-EIO);
			schedule_idle(); /* report the state change */
		}
	} else if (!pool.fail_logged && !pool.stopping) {
		LOGW(MOD, "cannot connect to PostgreSQL (%s): %s; retrying with backoff %u..%u ms", why,
		     msg, pool.min_ms, pool.max_ms);
		pool.fail_logged = true;
	} else {
		LOGD(MOD, "%s %u: connect failed (%s): %s", conn_kind(c), c->id, why, msg);
	}

	if (pool.stopping) {
		schedule_idle();
		return;
	}
	unsigned delay = c->backoff_ms;
	c->backoff_ms = c->backoff_ms >= pool.max_ms / 2 ? pool.max_ms : c->backoff_ms * 2;
	uv_timer_start(&c->timer, on_reconnect, delay, 0);
}

static void conn_start(struct db_conn *c)
{
	const char *const kw[] = {"client_encoding", "dbname", "fallback_application_name", NULL};
	const char *const val[] = {"UTF8", pool.conninfo, c->listener ? "simpled-listen" : "simpled",
				   NULL};
	c->q = NULL;
	c->nprepared = 0;
	c->pg = PQconnectStartParams(kw, val, 1);
	if (!c->pg) {
		conn_broken(c, "out of memory");
		return;
	}
	PQsetNoticeProcessor(c->pg, on_notice, c);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		conn_broken(c, "connect failed");
		return;
	}
	c->state = CONN_CONNECTING;
	uv_timer_start(&c->timer, on_connect_timeout, DB_CONNECT_TIMEOUT_MS, 0);
	/* libpq: before the first PQconnectPoll, behave as if it had returned
	 * PGRES_POLLING_WRITING. */
	if (conn_watch(c, UV_WRITABLE) != 0)
		conn_broken(c, "cannot watch the socket");
}

static void conn_connect_step(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (conn_watch(c, UV_READABLE) != 0)
			conn_broken(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_WRITING:
		if (conn_watch(c, UV_WRITABLE) != 0)
			conn_broken(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_OK:
		break;
	case PGRES_POLLING_FAILED:
	default:
		conn_broken(c, "connect failed");
		return;
	}
	if (PQsetnonblocking(c->pg, 1) != 0) {
		conn_broken(c, "cannot make the connection non-blocking");
		return;
	}
	LOGD(MOD, "%s %u connected (backend pid %d)", conn_kind(c), c->id, PQbackendPID(c->pg));
	c->state = CONN_IDLE;
	if (conn_watch(c, UV_READABLE) != 0) {
		conn_broken(c, "cannot watch the socket");
		return;
	}
	conn_kick(c);
}

/* Maps a final result to the callback's err.  A FATAL or PANIC error ends
 * the session (pg_terminate_backend, server shutdown, crash), and an error
 * without SQLSTATE comes from libpq itself (connection lost): both mean the
 * connection broke, -EIO.  Anything else the server said is -EPROTO. */
static int result_err(const struct db_conn *c, const PGresult *res)
{
	if (!res || PQstatus(c->pg) == CONNECTION_BAD)
		return -EIO;
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return 0;
	case PGRES_FATAL_ERROR: {
		const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (!state || (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)))
			return -EIO;
		return -EPROTO;
	}
	case PGRES_BAD_RESPONSE:
		return -EIO;
	default:
		return -EPROTO;
	}
}

static void log_result_error(const struct db_conn *c, const char *what, const PGresult *res)
{
	char msg[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	/* The primary message only: DETAIL and CONTEXT quote row and parameter
	 * values (a duplicate key, say), which must not reach the log. */
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (primary)
		clean_message(primary, msg, sizeof msg);
	else
		clean_message(res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg), msg, sizeof msg);
	/* Integrity violations (class 23: duplicates, foreign keys) are answers
	 * the caller expects; anything else deserves attention. */
	if (state && strncmp(state, "23", 2) == 0)
		LOGD(MOD, "%s failed [%s]: %s", what, state, msg);
	else
		LOGW(MOD, "%s failed [%s]: %s", what, state ? state : "-", msg);
}

static void setup_done(struct db_conn *c, PGresult *res)
{
	int err = result_err(c, res);
	if (err == -EIO) {
		PQclear(res);
		conn_broken(c, c->listener ? "LISTEN failed" : "prepare failed");
		return;
	}
	if (c->listener) {
		if (err)
			log_result_error(c, "LISTEN", res);
		for (size_t i = 0; i < listens.n; i++) {
			if (listens.v[i].sent) {
				listens.v[i].sent = false;
				listens.v[i].listening = true;
			}
		}
	} else {
		const struct db_stmt *s = stmts.v[c->nprepared];
		if (err) {
			/* Keep going: db_exec of this statement will get the server's
			 * "does not exist" error (-EPROTO), which names the problem. */
			char what[96];
			snprintf(what, sizeof what, "prepare %s", s->name);
			log_result_error(c, what, res);
		}
		c->nprepared++;
	}
	PQclear(res);
	c->state = CONN_IDLE;
	conn_kick(c);
}

static void query_done(struct db_conn *c, PGresult *res)
{
	struct db_query *q = c->q;
	c->q = NULL;
	int err = result_err(c, res);
	if (err) {
		char what[96];
		snprintf(what, sizeof what, "query %s", q->stmt->name);
		log_result_error(c, what, res);
	}
	if (err == -EIO) {
		conn_broken(c, "query failed");
	} else if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		/* A statement left a transaction open; the next caller must not
		 * run inside it.  Starting afresh rolls it back. */
		LOGE(MOD, "statement %s left a transaction open; reconnecting", q->stmt->name);
		conn_broken(c, "transaction left open");
	} else {
		/* Take the next query before running the callback, so a db_exec
		 * from the callback queues behind the ones already waiting. */
		c->state = CONN_IDLE;
		conn_kick(c);
	}
	q->cb(q->ctx, err, res);
	PQclear(res);
	free(q);
	if (pool.stopping)
		schedule_idle();
}

static void conn_drain_notifies(struct db_conn *c)
{
	PGnotify *n;
	while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
		/* By index: a callback may db_listen and grow the array. */
		for (size_t i = 0; i < listens.n; i++) {
			if (strcmp(listens.v[i].channel, n->relname) != 0)
				continue;
			db_notify_cb cb = listens.v[i].cb;
			void *ctx = listens.v[i].ctx;
			cb(ctx, n->relname, n->extra);
		}
		PQfreemem(n);
	}
}

static void conn_read(struct db_conn *c)
{
	if (!PQconsumeInput(c->pg)) {
		conn_broken(c, "read failed");
		return;
	}
	conn_drain_notifies(c);
	while (c->pg && (c->state == CONN_SETUP || c->state == CONN_BUSY) && !PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (r) {
			/* Keep one result per command: the first error, else the last. */
			if (!c->res) {
				c->res = r;
			} else if (PQresultStatus(c->res) != PGRES_FATAL_ERROR) {
				PQclear(c->res);
				c->res = r;
			} else {
				PQclear(r);
			}
			continue;
		}
		PGresult *res = c->res;
		c->res = NULL;
		if (c->state == CONN_SETUP)
			setup_done(c, res);
		else
			query_done(c, res);
	}
	if (c->pg && PQstatus(c->pg) == CONNECTION_BAD)
		conn_broken(c, "connection closed");
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct db_poll *p = container_of(h, struct db_poll, handle);
	struct db_conn *c = p->conn;
	if (c->poll != p || !c->pg)
		return;
	if (c->state == CONN_CONNECTING) {
		/* PQconnectPoll finds out itself what the socket's state is. */
		conn_connect_step(c);
	} else if (status < 0) {
		LOGD(MOD, "%s %u: poll error: %s", conn_kind(c), c->id, uv_strerror(status));
		conn_broken(c, "socket error");
	} else {
		if (events & UV_READABLE)
			conn_read(c);
		/* Reading may have let libpq push out more (PQflush docs). */
		if (c->pg && c->flushing)
			conn_flush(c);
	}
	if (pool.stopping)
		schedule_idle();
}

/* ---- shutdown ---------------------------------------------------------- */

static void conn_close_final(struct db_conn *c)
{
	conn_close_pg(c);
	uv_timer_stop(&c->timer);
	if (c->up && !c->listener)
		pool.nup--;
	c->up = false;
	c->state = CONN_DOWN;
	c->closed = true;
}

static void pool_reset(void)
{
	for (size_t i = 0; i < listens.n; i++)
		free(listens.v[i].channel);
	free(listens.v);
	memset(&listens, 0, sizeof listens);
	free(pool.conns);
	free(pool.conninfo);
	memset(&pool, 0, sizeof pool);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
	if (--pool.nclosing == 0 && pool.finishing) {
		void (*done)(void *) = pool.done;
		void *arg = pool.done_arg;
		LOGI(MOD, "pool closed");
		pool_reset();
		if (done)
			done(arg);
	}
}

/* Moves db_shutdown forward; runs only from on_idle. */
static void shutdown_step(void)
{
	unsigned total = pool.nconns + 1;
	for (unsigned i = 0; i < total; i++) {
		struct db_conn *c = &pool.conns[i];
		/* Connections that are not up will not be of use any more. */
		if (!c->closed && (c->listener || !c->up))
			conn_close_final(c);
	}
	if (pool.nup == 0 && pool.qhead)
		fail_queue(-ECANCELED);
	bool open = false;
	for (unsigned i = 0; i < pool.nconns; i++) {
		struct db_conn *c = &pool.conns[i];
		if (c->closed)
			continue;
		if (c->state == CONN_IDLE && !pool.qhead)
			conn_close_final(c);
		else
			open = true;
	}
	if (open || pool.dhead)
		return;
	/* Everything is finished: close the handles; the last close callback
	 * resets the pool and calls done. */
	pool.finishing = true;
	uv_close((uv_handle_t *)&pool.idle, on_handle_closed);
	pool.nclosing++;
	for (unsigned i = 0; i < total; i++) {
		uv_close((uv_handle_t *)&pool.conns[i].timer, on_handle_closed);
		pool.nclosing++;
	}
}

static void on_idle(uv_idle_t *h)
{
	/* Failures deferred so far; new ones go to the next turn. */
	struct db_query *list = pool.dhead;
	pool.dhead = pool.dtail = NULL;
	while (list) {
		struct db_query *q = list;
		list = q->next;
		q->cb(q->ctx, q->err, NULL);
		free(q);
	}
	bool up = pool.nup > 0;
	if (!pool.stopping && up != pool.reported_up) {
		pool.reported_up = up;
		if (pool.state_cb)
			pool.state_cb(pool.state_ctx, up);
	}
	if (pool.stopping && !pool.finishing)
		shutdown_step();
	if (pool.finishing)
		return;
	if (!pool.dhead)
		uv_idle_stop(h);
}

/* ---- public API -------------------------------------------------------- */

int db_prepare(const char *name, const char *sql)
{
	if (!name || !*name || !sql || !*sql)
		return -EINVAL;
	if (strlen(name) > DB_MAX_NAME)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < stmts.n; i++) {
		if (strcmp(stmts.v[i]->name, name) == 0)
			return strcmp(stmts.v[i]->sql, sql) == 0 ? 0 : -EEXIST;
	}
	if (stmts.n == stmts.cap) {
		size_t cap = stmts.cap ? stmts.cap * 2 : 16;
		struct db_stmt **v = realloc(stmts.v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		stmts.v = v;
		stmts.cap = cap;
	}
	struct db_stmt *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->name = strdup(name);
	s->sql = strdup(sql);
	if (!s->name || !s->sql) {
		free(s->name);
		free(s->sql);
		free(s);
		return -ENOMEM;
	}
	stmts.v[stmts.n++] = s;
	/* Idle connections prepare it now; busy ones before their next query. */
	if (pool.inited) {
		for (unsigned i = 0; i < pool.nconns; i++)
			conn_kick(&pool.conns[i]);
	}
	return 0;
}

int db_init(uv_loop_t *loop, const db_options_t *opts)
{
	if (pool.inited)
		return -EALREADY;
	if (!loop || !opts || !opts->conninfo)
		return -EINVAL;
	char *errmsg = NULL;
	PQconninfoOption *parsed = PQconninfoParse(opts->conninfo, &errmsg);
	if (!parsed) {
		/* The message quotes the string, which may hold a password. */
		LOGE(MOD, "invalid PostgreSQL connection string");
		PQfreemem(errmsg);
		return -EINVAL;
	}
	PQconninfoFree(parsed);
	unsigned nconns = opts->nconns ? opts->nconns : DB_DEFAULT_NCONNS;
	if (nconns > DB_MAX_NCONNS)
		return -EINVAL;

	struct db_conn *conns = calloc(nconns + 1, sizeof *conns);
	char *conninfo = strdup(opts->conninfo);
	if (!conns || !conninfo) {
		free(conns);
		free(conninfo);
		return -ENOMEM;
	}
	int err = uv_idle_init(loop, &pool.idle);
	if (err) {
		free(conns);
		free(conninfo);
		return err;
	}
	pool.loop = loop;
	pool.conns = conns;
	pool.conninfo = conninfo;
	pool.nconns = nconns;
	pool.max_queue = opts->max_queue ? opts->max_queue : DB_DEFAULT_MAX_QUEUE;
	pool.min_ms = opts->reconnect_min_ms ? opts->reconnect_min_ms : DB_DEFAULT_RECONNECT_MIN_MS;
	pool.max_ms = opts->reconnect_max_ms ? opts->reconnect_max_ms : DB_DEFAULT_RECONNECT_MAX_MS;
	if (pool.max_ms < pool.min_ms)
		pool.max_ms = pool.min_ms;
	pool.inited = true;
	for (unsigned i = 0; i <= nconns; i++) {
		struct db_conn *c = &conns[i];
		c->id = i;
		c->listener = i == nconns;
		c->backoff_ms = pool.min_ms;
		uv_timer_init(loop, &c->timer); /* cannot fail */
	}
	for (unsigned i = 0; i < nconns; i++)
		conn_start(&conns[i]);
	if (listens.n)
		conn_start(listener_conn());
	return 0;
}

int db_exec(const char *stmt, int nparams, const char *const *params, db_cb cb, void *ctx)
{
	if (!stmt || !cb || nparams < 0 || nparams > DB_MAX_PARAMS || (nparams && !params))
		return -EINVAL;
	if (!pool.inited || pool.stopping || pool.nup == 0)
		return -ENOTCONN;
	if (pool.qlen >= pool.max_queue)
		return -EAGAIN;
	const struct db_stmt *s = NULL;
	for (size_t i = 0; i < stmts.n && !s; i++) {
		if (strcmp(stmts.v[i]->name, stmt) == 0)
			s = stmts.v[i];
	}
	if (!s)
		return -ENOENT;

	size_t size = sizeof(struct db_query) + (size_t)nparams * sizeof(char *);
	for (int i = 0; i < nparams; i++) {
		if (params[i])
			size += strlen(params[i]) + 1;
	}
	struct db_query *q = malloc(size);
	if (!q)
		return -ENOMEM;
	const char **pv = (const char **)(void *)(q + 1);
	char *p = (char *)(pv + nparams);
	for (int i = 0; i < nparams; i++) {
		if (!params[i]) {
			pv[i] = NULL;
			continue;
		}
		size_t len = strlen(params[i]) + 1;
		memcpy(p, params[i], len);
		pv[i] = p;
		p += len;
	}
	*q = (struct db_query){.stmt = s, .nparams = nparams, .params = pv, .cb = cb, .ctx = ctx};

	if (pool.qtail)
		pool.qtail->next = q;
	else
		pool.qhead = q;
	pool.qtail = q;
	pool.qlen++;
	dispatch();
	return 0;
}

bool db_is_up(void) { return pool.inited && !pool.stopping && pool.nup > 0; }

unsigned db_idle_count(void)
{
	unsigned n = 0;
	for (unsigned i = 0; pool.inited && i < pool.nconns; i++) {
		if (pool.conns[i].up && pool.conns[i].state == CONN_IDLE)
			n++;
	}
	return n;
}

unsigned db_queue_length(void) { return pool.qlen; }

void db_set_state_cb(db_state_cb cb, void *ctx)
{
	pool.state_cb = cb;
	pool.state_ctx = ctx;
}

int db_listen(const char *channel, db_notify_cb cb, void *ctx)
{
	if (!channel || !*channel || !cb)
		return -EINVAL;
	if (strlen(channel) > DB_MAX_NAME)
		return -ENAMETOOLONG;
	if (pool.stopping)
		return -ECANCELED;
	if (listens.n == listens.cap) {
		size_t cap = listens.cap ? listens.cap * 2 : 8;
		struct db_listen_reg *v = realloc(listens.v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		listens.v = v;
		listens.cap = cap;
	}
	char *copy = strdup(channel);
	if (!copy)
		return -ENOMEM;
	listens.v[listens.n++] = (struct db_listen_reg){.channel = copy, .cb = cb, .ctx = ctx};
	if (pool.inited) {
		struct db_conn *c = listener_conn();
		if (c->state == CONN_DOWN && !uv_is_active((uv_handle_t *)&c->timer))
			conn_start(c);
		else
			conn_kick(c);
	}
	return 0;
}

void db_shutdown(void (*done)(void *arg), void *arg)
{
	if (!pool.inited) {
		if (done)
			done(arg);
		return;
	}
	if (pool.stopping) {
		LOGW(MOD, "db_shutdown called twice; ignoring the second call");
		return;
	}
	pool.stopping = true;
	pool.done = done;
	pool.done_arg = arg;
	LOGI(MOD, "shutting down: %u queued, %u idle of %u", pool.qlen, db_idle_count(),
	     pool.nconns);
	schedule_idle();
}

/* ---- array literals ---------------------------------------------------- */

void db_array_begin(buf_t *b) { buf_puts(b, "{"); }

void db_array_add(buf_t *b, const char *value)
{
	/* Every element is quoted, so "NULL", "" and values with commas,
	 * braces or spaces are taken literally; only an actual NULL is bare. */
	if (b->len > 0 && b->data[b->len - 1] != '{')
		buf_puts(b, ",");
	if (!value) {
		buf_puts(b, "NULL");
		return;
	}
	buf_puts(b, "\"");
	while (*value) {
		size_t run = strcspn(value, "\"\\");
		buf_append(b, value, run);
		value += run;
		if (!*value)
			break;
		char esc[2] = {'\\', *value++};
		buf_append(b, esc, 2);
	}
	buf_puts(b, "\"");
}

void db_array_end(buf_t *b) { buf_puts(b, "}"); }
