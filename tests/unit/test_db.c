/* Tests of the async PostgreSQL pool (server/db/db.c) on a real libuv loop
 * against the real cluster of the `pg` fixture (SIMPLED_TEST_DB), plus the
 * array-literal builder, which needs no database.
 *
 * Every test that opens a pool ends with db_shutdown and
 * uv_loop_close() == 0: nothing may be left open.  Every callback checks
 * that it does not run from inside db_exec.  The pool's connections carry
 * an application_name of their own, so the reconnect test kills only them
 * and not the connections of other tests sharing the cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/base/buf.h"
#include "server/base/log.h"
#include "server/db/db.h"

static uv_loop_t loop;
static char conninfo[1024]; /* SIMPLED_TEST_DB + our application_name */
static char appname[64];
static int in_exec; /* > 0 while inside db_exec */

/* ---- loop helpers -------------------------------------------------------- */

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until cond() holds or ms have passed; a 5 ms tick makes
 * sure the condition is looked at even when nothing else happens. */
static bool run_until(bool (*cond)(void), unsigned ms)
{
	uv_timer_t tick;
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, on_tick, 5, 5);
	uv_update_time(&loop);
	uint64_t end = uv_now(&loop) + ms;
	while (!cond() && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_NOWAIT); /* completes the close */
	return cond();
}

static bool never(void) { return false; }

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}
static void run_for(unsigned ms) { run_until(never, ms); }

static int exec(const char *stmt, int n, const char *const *params, db_cb cb, void *ctx)
{
	in_exec++;
	int err = db_exec(stmt, n, params, cb, ctx);
	in_exec--;
	return err;
}

/* ---- pool life cycle ----------------------------------------------------- */

static void on_ignore(void *ctx, int err, PGresult *res);
static void on_notify(void *ctx, const char *channel, const char *payload);

static int state_ups, state_downs;
static bool exec_refused_when_down;

static void on_state(void *ctx, bool up)
{
	(void)ctx;
	assert_int_equal(in_exec, 0);
	if (up) {
		state_ups++;
	} else {
		state_downs++;
		/* Callers are told at once while the database is down. */
		exec_refused_when_down =
		    !db_is_up() &&
		    db_exec("t_id", 1, (const char *const[]){"1"}, on_ignore, NULL) == -ENOTCONN;
	}
}

static bool pool_up(void) { return db_is_up(); }

static bool pool_open; /* db_init done, db_shutdown not finished */

static void start_pool_with(const char *ci, unsigned nconns, unsigned max_queue, unsigned min_ms,
			    unsigned max_ms)
{
	assert_int_equal(uv_loop_init(&loop), 0);
	pool_open = true;
	state_ups = state_downs = 0;
	db_set_state_cb(on_state, NULL);
	db_options_t o = {.conninfo = ci,
			  .nconns = nconns,
			  .max_queue = max_queue,
			  .reconnect_min_ms = min_ms,
			  .reconnect_max_ms = max_ms};
	assert_int_equal(db_init(&loop, &o), 0);
}

static unsigned want_idle;
static bool all_idle(void) { return db_idle_count() == want_idle; }

/* Starts a pool and waits until every connection is up and idle, so tests
 * know where each query goes. */
static void start_pool(unsigned nconns, unsigned max_queue)
{
	start_pool_with(conninfo, nconns, max_queue, 0, 0);
	want_idle = nconns;
	assert_true(run_until(all_idle, 10000));
}

static int shutdown_calls;
static void on_shutdown(void *arg)
{
	assert_ptr_equal(arg, &shutdown_calls);
	shutdown_calls++;
}
static bool shut_down(void) { return shutdown_calls > 0; }

static void stop_pool(void)
{
	shutdown_calls = 0;
	db_shutdown(on_shutdown, &shutdown_calls);
	assert_true(run_until(shut_down, 15000));
	run_for(20); /* a second done would show up here */
	assert_int_equal(shutdown_calls, 1);
	pool_open = false;
	assert_false(db_is_up());
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* After a failed test: close what it left open, so the next one starts
 * clean instead of failing with -EALREADY. */
static int teardown(void **state)
{
	(void)state;
	if (!pool_open)
		return 0;
	pool_open = false;
	shutdown_calls = 0;
	db_shutdown(on_shutdown, &shutdown_calls);
	run_until(shut_down, 15000);
	uv_walk(&loop, close_any, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return 0;
}

/* ---- one query's outcome ------------------------------------------------- */

struct call {
	int id;
	int calls;
	int err;
	int order;
	char value[256];
	bool isnull;
	char sqlstate[6];
};

static int ncompleted;

static void on_result(void *ctx, int err, PGresult *res)
{
	struct call *c = ctx;
	assert_int_equal(in_exec, 0);
	c->calls++;
	c->err = err;
	c->order = ncompleted++;
	if (res && err == 0 && PQntuples(res) > 0 && PQnfields(res) > 0) {
		int col = PQnfields(res) - 1;
		c->isnull = PQgetisnull(res, 0, col);
		snprintf(c->value, sizeof c->value, "%s", PQgetvalue(res, 0, col));
	}
	if (res && err == -EPROTO) {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(c->sqlstate, sizeof c->sqlstate, "%s", s ? s : "");
	}
}

static int target;
static bool reached(void) { return ncompleted >= target; }

static void wait_completed(int n, unsigned ms)
{
	target = n;
	assert_true(run_until(reached, ms));
}

/* ---- fixtures ------------------------------------------------------------ */

static int group_setup(void **state)
{
	(void)state;
	const char *ci = getenv("SIMPLED_TEST_DB");
	if (!ci || !*ci) {
		fprintf(stderr, "SIMPLED_TEST_DB is not set (run through ctest: fixture pg)\n");
		return -1;
	}
	snprintf(appname, sizeof appname, "sd_test_db_%ld", (long)getpid());
	snprintf(conninfo, sizeof conninfo, "%s application_name=%s", ci, appname);
	if (getenv("SD_TEST_DEBUG"))
		log_set_level(LOG_DEBUG);
	static const char *const s[][2] = {
	    {"t_id", "SELECT $1::int"},
	    {"t_add", "SELECT $1::int + $2::int"},
	    {"t_echo", "SELECT $1::text"},
	    {"t_unnest", "SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n"},
	    {"t_sleep", "SELECT pg_sleep($1::float8), $2::int"},
	    {"t_div", "SELECT 1 / $1::int"},
	    {"t_notify", "SELECT pg_notify($1, $2)"},
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		if (db_prepare(s[i][0], s[i][1]) != 0)
			return -1;
	}
	return 0;
}

/* ---- tests without a database ------------------------------------------- */

static void test_array_literal(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	db_array_begin(&b);
	db_array_end(&b);
	assert_string_equal(buf_cstr(&b), "{}");

	buf_reset(&b);
	db_array_begin(&b);
	db_array_add(&b, "a");
	db_array_end(&b);
	assert_string_equal(buf_cstr(&b), "{\"a\"}");

	buf_reset(&b);
	db_array_begin(&b);
	const char *v[] = {"a", NULL, "", "NULL", "he said \"hi\"", "back\\slash", "a,b {c}",
			   "\\\"", "ünï©ødé ✓", " lead", "line\nbreak"};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		db_array_add(&b, v[i]);
	db_array_end(&b);
	assert_int_equal(b.err, 0);
	assert_string_equal(buf_cstr(&b), "{\"a\",NULL,\"\",\"NULL\",\"he said \\\"hi\\\"\","
					  "\"back\\\\slash\",\"a,b {c}\",\"\\\\\\\"\","
					  "\"ünï©ødé ✓\",\" lead\",\"line\nbreak\"}");

	/* A NULL first, and only NULLs. */
	buf_reset(&b);
	db_array_begin(&b);
	db_array_add(&b, NULL);
	db_array_add(&b, NULL);
	db_array_end(&b);
	assert_string_equal(buf_cstr(&b), "{NULL,NULL}");
	buf_free(&b);

	/* The buffer's limit is honoured and sticky. */
	buf_init(&b, 8);
	db_array_begin(&b);
	db_array_add(&b, "0123456789");
	db_array_end(&b);
	assert_int_equal(b.err, -EMSGSIZE);
	buf_free(&b);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_int_equal(db_exec("t_id", 0, NULL, on_result, NULL), -ENOTCONN);
	assert_int_equal(db_prepare("", "SELECT 1"), -EINVAL);
	assert_int_equal(db_prepare("x", NULL), -EINVAL);
	char longname[80];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(db_prepare(longname, "SELECT 1"), -ENAMETOOLONG);
	assert_int_equal(db_prepare("t_id", "SELECT $1::int"), 0); /* same again: fine */
	assert_int_equal(db_prepare("t_id", "SELECT 2"), -EEXIST);
	assert_int_equal(db_listen("", on_notify, NULL), -EINVAL);
	assert_int_equal(db_listen("chan", NULL, NULL), -EINVAL);

	assert_int_equal(uv_loop_init(&loop), 0);
	pool_open = true;
	db_options_t o = {.conninfo = NULL};
	assert_int_equal(db_init(&loop, &o), -EINVAL);
	o.conninfo = "this is not a conninfo";
	assert_int_equal(db_init(&loop, &o), -EINVAL);
	o.conninfo = conninfo;
	o.nconns = 1000;
	assert_int_equal(db_init(&loop, &o), -EINVAL);
	o.nconns = 1;
	assert_int_equal(db_init(&loop, &o), 0);
	assert_int_equal(db_init(&loop, &o), -EALREADY);
	stop_pool();
}

/* ---- tests against the cluster ------------------------------------------- */

static void test_not_connected(void **state)
{
	(void)state;
	struct call c = {0};
	ncompleted = 0;
	start_pool_with(conninfo, 2, 0, 0, 0);
	/* Connecting takes loop turns: nothing is up yet. */
	assert_false(db_is_up());
	assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &c), -ENOTCONN);
	assert_true(run_until(pool_up, 10000));
	assert_int_equal(state_ups, 1);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"7"}, on_result, &c), 0);
	assert_int_equal(c.calls, 0); /* never from inside db_exec */
	wait_completed(1, 5000);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.err, 0);
	assert_string_equal(c.value, "7");
	stop_pool();
	assert_int_equal(c.calls, 1);
}

static void test_no_server(void **state)
{
	(void)state;
	/* Nobody listens on this socket: the pool keeps retrying, refuses
	 * queries, and still shuts down cleanly. */
	start_pool_with("host=/nonexistent-simpled-test port=1 dbname=x user=x", 2, 0, 20, 50);
	run_for(300);
	assert_false(db_is_up());
	assert_int_equal(state_ups, 0);
	struct call c = {0};
	assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &c), -ENOTCONN);
	stop_pool();
	assert_int_equal(c.calls, 0);
}

static void test_exec_params(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(2, 0);
	assert_int_equal(db_idle_count(), 2);
	struct call add = {0}, null = {0}, quoted = {0}, unknown = {0};
	assert_int_equal(exec("t_add", 2, (const char *const[]){"2", "40"}, on_result, &add), 0);
	assert_int_equal(exec("t_echo", 1, (const char *const[]){NULL}, on_result, &null), 0);
	/* Parameters are copied: the caller's buffer may change at once. */
	char text[] = "it's a \"test\" \\ ✓";
	assert_int_equal(exec("t_echo", 1, (const char *const[]){text}, on_result, &quoted), 0);
	memset(text, 'X', sizeof text - 1);
	assert_int_equal(exec("no_such_stmt", 0, NULL, on_result, &unknown), -ENOENT);
	assert_int_equal(exec("t_add", -1, NULL, on_result, &unknown), -EINVAL);
	wait_completed(3, 5000);
	assert_int_equal(add.err, 0);
	assert_string_equal(add.value, "42");
	assert_int_equal(null.err, 0);
	assert_true(null.isnull);
	assert_int_equal(quoted.err, 0);
	assert_string_equal(quoted.value, "it's a \"test\" \\ ✓");
	assert_int_equal(unknown.calls, 0);

	/* A statement registered while the pool runs is prepared on every
	 * connection before it runs there. */
	assert_int_equal(db_prepare("t_late", "SELECT 'late ' || $1::text"), 0);
	struct call late[4] = {{0}};
	for (int i = 0; i < 4; i++)
		assert_int_equal(exec("t_late", 1, (const char *const[]){"one"}, on_result, &late[i]), 0);
	wait_completed(7, 5000);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(late[i].err, 0);
		assert_string_equal(late[i].value, "late one");
	}
	stop_pool();
}

/* Collects every row of an unnest round trip. */
struct rows {
	int calls, err, n;
	char *v[16];
	bool isnull[16];
};

static void on_rows(void *ctx, int err, PGresult *res)
{
	struct rows *r = ctx;
	assert_int_equal(in_exec, 0);
	r->calls++;
	r->err = err;
	ncompleted++;
	if (err)
		return;
	r->n = PQntuples(res);
	for (int i = 0; i < r->n && i < 16; i++) {
		r->isnull[i] = PQgetisnull(res, i, 0);
		r->v[i] = strdup(PQgetvalue(res, i, 0));
	}
}

static void test_array_roundtrip(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(1, 0);
	const char *v[] = {"plain", NULL, "", "NULL", "he said \"hi\"", "back\\slash", "\\\"",
			   "a,b {c} (d)", "ünï©ødé ✓ 日本", "  spaced  ", "line\nbreak\ttab", "'"};
	const size_t n = sizeof v / sizeof v[0];
	buf_t b;
	buf_init(&b, 0);
	db_array_begin(&b);
	for (size_t i = 0; i < n; i++)
		db_array_add(&b, v[i]);
	db_array_end(&b);
	assert_int_equal(b.err, 0);
	struct rows r = {0};
	assert_int_equal(exec("t_unnest", 1, (const char *const[]){buf_cstr(&b)}, on_rows, &r), 0);
	buf_free(&b);
	wait_completed(1, 5000);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, (int)n);
	for (size_t i = 0; i < n; i++) {
		if (!v[i]) {
			assert_true(r.isnull[i]);
		} else {
			assert_false(r.isnull[i]);
			assert_string_equal(r.v[i], v[i]);
		}
		free(r.v[i]);
	}
	stop_pool();
}

#define NMANY 400

static void test_many_concurrent(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(4, 1000);
	static struct call c[NMANY];
	memset(c, 0, sizeof c);
	char id[16];
	for (int i = 0; i < NMANY; i++) {
		snprintf(id, sizeof id, "%d", i);
		c[i].id = i;
		assert_int_equal(exec("t_id", 1, (const char *const[]){id}, on_result, &c[i]), 0);
	}
	/* Four went out, the rest wait. */
	assert_int_equal(db_idle_count(), 0);
	assert_int_equal(db_queue_length(), NMANY - 4);
	wait_completed(NMANY, 20000);
	run_for(20); /* a second call would show here */
	for (int i = 0; i < NMANY; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].err, 0);
		assert_int_equal(atoi(c[i].value), i);
	}
	assert_int_equal(db_queue_length(), 0);
	assert_int_equal(db_idle_count(), 4);
	stop_pool();
}

static void test_fifo_order(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(1, 0);
	static struct call c[100];
	memset(c, 0, sizeof c);
	char id[16];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "%d", i);
		assert_int_equal(exec("t_id", 1, (const char *const[]){id}, on_result, &c[i]), 0);
	}
	wait_completed(100, 10000);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].order, i);
		assert_int_equal(atoi(c[i].value), i);
	}
	stop_pool();
}

static void test_queue_full(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(1, 5);
	struct call c[7] = {{0}};
	/* The first goes straight to the idle connection, five wait. */
	for (int i = 0; i < 6; i++)
		assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &c[i]), 0);
	assert_int_equal(db_queue_length(), 5);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &c[6]), -EAGAIN);
	wait_completed(6, 5000);
	assert_int_equal(c[6].calls, 0);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &c[6]), 0);
	wait_completed(7, 5000);
	assert_int_equal(c[6].err, 0);
	stop_pool();
}

static void test_sql_error(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(1, 0);
	struct call bad = {0}, conv = {0}, after = {0};
	assert_int_equal(exec("t_div", 1, (const char *const[]){"0"}, on_result, &bad), 0);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"not a number"}, on_result, &conv), 0);
	assert_int_equal(exec("t_add", 2, (const char *const[]){"1", "1"}, on_result, &after), 0);
	wait_completed(3, 5000);
	assert_int_equal(bad.err, -EPROTO);
	assert_string_equal(bad.sqlstate, "22012"); /* division_by_zero */
	assert_int_equal(conv.err, -EPROTO);
	assert_string_equal(conv.sqlstate, "22P02"); /* invalid_text_representation */
	/* The connection is still good. */
	assert_int_equal(after.err, 0);
	assert_string_equal(after.value, "2");
	assert_true(db_is_up());
	stop_pool();
}

/* ---- LISTEN / NOTIFY ----------------------------------------------------- */

static int notified;
static char last_payload[256];
static char last_channel[64];

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	assert_ptr_equal(ctx, &notified);
	assert_int_equal(in_exec, 0);
	snprintf(last_channel, sizeof last_channel, "%s", channel);
	snprintf(last_payload, sizeof last_payload, "%s", payload);
	notified++;
}

static void on_ignore(void *ctx, int err, PGresult *res)
{
	(void)ctx;
	(void)err;
	(void)res;
	assert_int_equal(in_exec, 0);
}

/* Sends NOTIFYs until one arrives: the LISTEN may not be in place yet. */
static void notify_until_heard(const char *channel, const char *payload)
{
	int before = notified;
	for (int i = 0; i < 200 && notified == before; i++) {
		if (db_is_up())
			exec("t_notify", 2, (const char *const[]){channel, payload}, on_ignore, NULL);
		run_for(50);
	}
	assert_true(notified > before);
}

static void test_listen_notify(void **state)
{
	(void)state;
	start_pool(1, 0);
	notified = 0;
	assert_int_equal(db_listen("sd_test_Chan", on_notify, &notified), 0);
	notify_until_heard("sd_test_Chan", "payload 'q' \"dq\" ✓");
	assert_string_equal(last_channel, "sd_test_Chan");
	assert_string_equal(last_payload, "payload 'q' \"dq\" ✓");
	/* Another channel is not ours. */
	int n = notified;
	exec("t_notify", 2, (const char *const[]){"sd_test_other", "x"}, on_ignore, NULL);
	run_for(200);
	assert_int_equal(notified, n);
	stop_pool();
}

/* ---- reconnect ----------------------------------------------------------- */

/* Kills the backends of this test's pool from a side connection; returns
 * how many were terminated. */
static int kill_our_backends(void)
{
	const char *ci = getenv("SIMPLED_TEST_DB");
	PGconn *side = PQconnectdb(ci);
	assert_int_equal(PQstatus(side), CONNECTION_OK);
	const char *params[1] = {appname};
	PGresult *r = PQexecParams(side,
				   "SELECT count(*) FROM (SELECT pg_terminate_backend(pid)"
				   " FROM pg_stat_activity WHERE datname = 'simpled'"
				   " AND pid <> pg_backend_pid() AND application_name = $1) t",
				   1, NULL, params, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	int n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(side);
	return n;
}

static bool pool_down(void) { return state_downs > 0; }

static void test_reconnect(void **state)
{
	(void)state;
	ncompleted = 0;
	/* A long enough first backoff that both connections are down together. */
	start_pool_with(conninfo, 2, 0, 300, 1000);
	assert_true(run_until(pool_up, 10000));
	notified = 0;
	assert_int_equal(db_listen("sd_test_reconnect", on_notify, &notified), 0);
	notify_until_heard("sd_test_reconnect", "before");
	ncompleted = 0;

	struct call sleep[2] = {{0}}, queued[2] = {{0}};
	assert_int_equal(exec("t_sleep", 2, (const char *const[]){"30", "0"}, on_result, &sleep[0]), 0);
	assert_int_equal(exec("t_sleep", 2, (const char *const[]){"30", "1"}, on_result, &sleep[1]), 0);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"2"}, on_result, &queued[0]), 0);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"3"}, on_result, &queued[1]), 0);
	assert_int_equal(db_idle_count(), 0);
	assert_int_equal(db_queue_length(), 2);
	run_for(300); /* the sleeps are running on the server now */
	assert_int_equal(ncompleted, 0);

	exec_refused_when_down = false;
	assert_int_equal(kill_our_backends(), 3); /* two pool connections, the listener */
	wait_completed(4, 5000);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sleep[i].calls, 1);
		assert_int_equal(sleep[i].err, -EIO);
		/* With every connection gone, the queue is failed, not held. */
		assert_int_equal(queued[i].calls, 1);
		assert_int_equal(queued[i].err, -EIO);
	}
	assert_true(run_until(pool_down, 2000));
	assert_int_equal(state_downs, 1);
	assert_true(exec_refused_when_down);

	/* Back up after the backoff; queries work again. */
	assert_true(run_until(pool_up, 10000));
	assert_int_equal(state_ups, 2);
	struct call after = {0};
	int base = ncompleted;
	assert_int_equal(exec("t_add", 2, (const char *const[]){"20", "22"}, on_result, &after), 0);
	wait_completed(base + 1, 5000);
	assert_int_equal(after.err, 0);
	assert_string_equal(after.value, "42");

	/* The listener LISTENs again after its reconnect. */
	notify_until_heard("sd_test_reconnect", "after");
	assert_string_equal(last_payload, "after");
	stop_pool();
}

/* libpq changes sockets while connecting, and the new socket usually gets
 * the old fd number; the pool must notice (inode) and watch the new one,
 * or it waits on a socket that no longer exists until the connect timeout
 * (10 s).  Two ways to make libpq do it against our one server:
 *   - host=127.0.0.1,SOCKETDIR port=1,PORT: the TCP connect is refused
 *     asynchronously (wait for writable), then the unix socket is tried
 *     (wait for writable again: the same events on a new socket);
 *   - target_session_attrs=prefer-standby over two hosts that are both our
 *     primary: connect, no standby, close, second host, close, then the
 *     first host again. */
static void test_socket_change(void **state)
{
	(void)state;
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(getenv("SIMPLED_TEST_DB"), &errmsg);
	assert_non_null(opts);
	char host[512] = "", port[16] = "5432";
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0 && o->val)
			snprintf(host, sizeof host, "%s", o->val);
		else if (strcmp(o->keyword, "port") == 0 && o->val)
			snprintf(port, sizeof port, "%s", o->val);
	}
	PQconninfoFree(opts);
	assert_true(host[0] == '/'); /* the fixture's cluster: a unix socket */

	char ci[2][1024];
	snprintf(ci[0], sizeof ci[0],
		 "host=127.0.0.1,%s port=1,%s dbname=simpled user=postgres application_name=%s",
		 host, port, appname);
	snprintf(ci[1], sizeof ci[1],
		 "host=%s,%s port=%s,%s dbname=simpled user=postgres "
		 "target_session_attrs=prefer-standby application_name=%s",
		 host, host, port, port, appname);
	for (int k = 0; k < 2; k++) {
		ncompleted = 0;
		start_pool_with(ci[k], 2, 0, 0, 0);
		want_idle = 2;
		assert_true(run_until(all_idle, 3000)); /* well before the connect timeout */
		struct call c[4] = {{0}};
		for (int i = 0; i < 4; i++)
			assert_int_equal(
			    exec("t_add", 2, (const char *const[]){"1", "2"}, on_result, &c[i]), 0);
		wait_completed(4, 5000);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(c[i].err, 0);
			assert_string_equal(c[i].value, "3");
		}
		stop_pool();
	}
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_shutdown_graceful(void **state)
{
	(void)state;
	ncompleted = 0;
	start_pool(2, 0);
	static struct call c[20];
	memset(c, 0, sizeof c);
	for (int i = 0; i < 20; i++)
		assert_int_equal(
		    exec("t_sleep", 2, (const char *const[]){"0.01", "5"}, on_result, &c[i]), 0);
	shutdown_calls = 0;
	db_shutdown(on_shutdown, &shutdown_calls);
	assert_false(db_is_up());
	struct call late = {0};
	assert_int_equal(exec("t_id", 1, (const char *const[]){"1"}, on_result, &late), -ENOTCONN);
	assert_int_equal(shutdown_calls, 0); /* from the loop, not from here */
	assert_true(run_until(shut_down, 10000));
	/* Every queued and in-flight query finished before done. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].err, 0);
		assert_string_equal(c[i].value, "5");
	}
	run_for(20);
	assert_int_equal(shutdown_calls, 1);
	pool_open = false;
	assert_int_equal(late.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static struct call chain[5];

static void on_shutdown_from_cb(void *ctx, int err, PGresult *res)
{
	on_result(ctx, err, res);
	if (ctx == &chain[0]) {
		db_shutdown(on_shutdown, &shutdown_calls);
		/* Nothing new is accepted once shutdown has begun. */
		assert_int_equal(db_exec("t_id", 1, (const char *const[]){"1"}, on_result, &chain[4]),
				 -ENOTCONN);
	}
}

static void test_shutdown_from_callback(void **state)
{
	(void)state;
	ncompleted = 0;
	shutdown_calls = 0;
	start_pool(1, 0);
	memset(chain, 0, sizeof chain);
	for (int i = 0; i < 4; i++)
		assert_int_equal(exec("t_id", 1, (const char *const[]){"9"}, on_shutdown_from_cb,
				      &chain[i]),
				 0);
	assert_true(run_until(shut_down, 10000));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(chain[i].calls, 1);
		assert_int_equal(chain[i].err, 0);
	}
	assert_int_equal(chain[4].calls, 0);
	run_for(20);
	assert_int_equal(shutdown_calls, 1);
	pool_open = false;
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Runs last: the bad statement stays registered (the registry outlives the
 * pool), and every later connection would log its failed prepare. */
static void test_bad_statement(void **state)
{
	(void)state;
	ncompleted = 0;
	assert_int_equal(db_prepare("t_bad", "SELEC nonsense"), 0);
	start_pool(1, 0);
	struct call bad = {0}, good = {0};
	assert_int_equal(exec("t_bad", 0, NULL, on_result, &bad), 0);
	assert_int_equal(exec("t_id", 1, (const char *const[]){"5"}, on_result, &good), 0);
	wait_completed(2, 5000);
	assert_int_equal(bad.err, -EPROTO);
	assert_string_equal(bad.sqlstate, "26000"); /* invalid_sql_statement_name */
	assert_int_equal(good.err, 0);
	assert_string_equal(good.value, "5");
	stop_pool();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_array_literal, teardown),
	    cmocka_unit_test_teardown(test_bad_arguments, teardown),
	    cmocka_unit_test_teardown(test_not_connected, teardown),
	    cmocka_unit_test_teardown(test_no_server, teardown),
	    cmocka_unit_test_teardown(test_exec_params, teardown),
	    cmocka_unit_test_teardown(test_array_roundtrip, teardown),
	    cmocka_unit_test_teardown(test_many_concurrent, teardown),
	    cmocka_unit_test_teardown(test_fifo_order, teardown),
	    cmocka_unit_test_teardown(test_queue_full, teardown),
	    cmocka_unit_test_teardown(test_sql_error, teardown),
	    cmocka_unit_test_teardown(test_listen_notify, teardown),
	    cmocka_unit_test_teardown(test_reconnect, teardown),
	    cmocka_unit_test_teardown(test_socket_change, teardown),
	    cmocka_unit_test_teardown(test_shutdown_graceful, teardown),
	    cmocka_unit_test_teardown(test_shutdown_from_callback, teardown),
	    cmocka_unit_test_teardown(test_bad_statement, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
