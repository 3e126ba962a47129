/* The request path and the process life cycle:
 *
 *   socket -> tp (framing, limits) -> sipmsg_parse (limits, Via fix)
 *          -> txn_server_match (absorb retransmissions)
 *          -> router_dispatch (generic checks, method table) -> handler
 *
 * Start-up: migrations (synchronous, before serving), database pool,
 * location load, then the listeners.  Shutdown on SIGTERM/SIGINT: stop
 * listening, let in-flight database writes finish (their 2xx go out), then
 * close everything and return 0. */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "messaging/messaging.h"
#include "presence/presence.h"
#include "presence/xcap.h"
#include "presence/xcap_store.h"
#include "server/auth/authn.h"
#include "server/base/log.h"
#include "server/db/db.h"
#include "server/http/http.h"
#include "server/proxy/alias.h"
#include "server/proxy/proxy.h"
#include "server/registrar/location.h"
#include "server/registrar/registrar.h"
#include "server/ratelimit.h"
#include "server/router.h"
#include "server/sip/sipmsg.h"
#include "server/sip/txn.h"
#include "server/transport/tp.h"

static struct {
	const config_t *cfg;
	uv_loop_t *loop;
	sip_limits_t limits;
	uv_signal_t sigterm, sigint, sigusr1;
	uv_timer_t stop_timer;
	bool stopping;
	bool ready_logged;
	char local_ips[16][64];
	int nlocal_ips;
} S;

bool server_is_local_domain(const char *host)
{
	if (!host)
		return false;
	for (size_t i = 0; i < S.cfg->domain.n; i++) {
		if (strcasecmp(S.cfg->domain.items[i], host) == 0)
			return true;
	}
	return false;
}

bool server_is_local_address(const char *host)
{
	if (!host)
		return false;
	char h[64];
	size_t n = strlen(host);
	/* [v6] as written in URIs */
	if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		host = h;
	}
	for (int i = 0; i < S.nlocal_ips; i++) {
		if (strcasecmp(S.local_ips[i], host) == 0)
			return true;
	}
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
	       strcasecmp(host, "localhost") == 0;
}

/* A REGISTER may name us by domain or by address; the registrar then
 * uses the To domain (which must be ours) as the realm. */
static bool registrar_host_ok(const char *host)
{
	return server_is_local_domain(host) || server_is_local_address(host);
}

static void send_raw_error(const tp_peer_t *from, const char *data, size_t len, int code,
			   const char *why)
{
	buf_t b;
	buf_init(&b, 0);
	char reason[192];
	snprintf(reason, sizeof reason, "%s - %s", sip_reason_phrase(code), why);
	if (sipmsg_raw_error_response(data, len, code, reason, &b) == 0)
		tp_send(from, b.data, b.len);
	buf_free(&b);
}

static void on_message(void *arg, const tp_peer_t *from, char *data, size_t len)
{
	(void)arg;
	sipmsg_t *msg = NULL;
	char why[128] = "";
	/* Requests only: responses answer our own NOTIFYs and MESSAGEs. */
	bool response = len >= 8 && memcmp(data, "SIP/2.0 ", 8) == 0;
	if (!response && !ratelimit_allow(&from->addr, uv_now(S.loop)))
		return;
	/* Answers to our relayed MESSAGEs are matched from their bytes (no
	 * full parse); anything else falls through to the full path. */
	if (response && txn_client_match_raw(data, len, from, &S.limits))
		return;
	int rc = sipmsg_parse(data, len, from, &S.limits, &msg, why, sizeof why);
	if (rc != 0) {
		char ip[64];
		uint16_t port = 0;
		tp_addr_to_str(&from->addr, ip, sizeof ip, &port);
		LOGI("server", "rejected message from %s:%u: %d %s", ip, port, rc, why);
		if (rc > 0)
			send_raw_error(from, data, len, rc, why);
		return;
	}
	if (!msg->is_request) {
		/* Not ours: maybe a 2xx retransmission for a call we proxied
		 * whose client transaction already ended (RFC 6026). */
		if (!txn_client_match(msg) && !proxy_stray_response(msg))
			LOGD("server", "stray %d response to %s dropped", msg->m->status_code, msg->method);
		sipmsg_free(msg);
		return;
	}
	if (S.stopping) {
		sipmsg_free(msg);
		return;
	}
	txn_t *t = NULL;
	switch (txn_server_match(msg, &t)) {
	case TXN_MATCH_NEW:
		txn_ref(t);
		/* Aliases (extension numbers, other names) are resolved once,
		 * here, so every handler sees the user's own AOR. */
		if (msg->m->req_uri && msg->m->req_uri->host &&
		    server_is_local_domain(msg->m->req_uri->host))
			alias_apply_ruri(msg, msg->m->req_uri->host);
		router_dispatch(t, msg);
		txn_unref(t);
		break;
	case TXN_MATCH_ABSORBED:
		sipmsg_free(msg);
		break;
	case TXN_MATCH_STRAY_ACK:
		router_stray_ack(msg);
		break;
	}
}

static void on_stream_error(void *arg, const tp_peer_t *from, int err, const char *head, size_t len)
{
	(void)arg;
	if (err == -EMSGSIZE)
		send_raw_error(from, head, len, 413, "Message Too Large");
	else
		send_raw_error(from, head, len, 400, "Malformed Content-Length");
}

/* --- listeners ---------------------------------------------------------- */

static int parse_listen(const char *spec, tp_proto_t *proto, char *host, size_t hostlen, uint16_t *port)
{
	if (strncasecmp(spec, "udp:", 4) == 0)
		*proto = TP_UDP;
	else if (strncasecmp(spec, "tcp:", 4) == 0)
		*proto = TP_TCP;
	else
		return -EINVAL;
	const char *s = spec + 4;
	const char *colon;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= hostlen)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= hostlen)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

static int open_listeners(void)
{
	for (size_t i = 0; i < S.cfg->listen.n; i++) {
		tp_proto_t proto;
		char host[64];
		uint16_t port;
		const char *spec = S.cfg->listen.items[i];
		if (parse_listen(spec, &proto, host, sizeof host, &port) != 0) {
			LOGE("server", "bad listen address '%s' (want udp:ADDR:PORT or tcp:[ADDR]:PORT)", spec);
			return -EINVAL;
		}
		int idx = tp_listen(proto, host, port);
		if (idx < 0) {
			LOGE("server", "cannot listen on %s: %s", spec, uv_strerror(idx));
			return idx;
		}
		struct sockaddr_storage sa;
		tp_proto_t p2;
		char ip[64];
		uint16_t bound = 0;
		tp_listener_addr(idx, &p2, &sa);
		tp_addr_to_str(&sa, ip, sizeof ip, &bound);
		if (S.nlocal_ips < 16)
			snprintf(S.local_ips[S.nlocal_ips++], sizeof S.local_ips[0], "%s", ip);
		LOGI("server", "listening on %s %s%s%s:%u", proto == TP_UDP ? "udp" : "tcp",
		     sa.ss_family == AF_INET6 ? "[" : "", ip, sa.ss_family == AF_INET6 ? "]" : "", bound);
	}
	return 0;
}

/* --- shutdown ----------------------------------------------------------- */

static void db_closed(void *arg)
{
	(void)arg;
	msg_shutdown();
	xcap_shutdown();
	txn_shutdown();
	proxy_shutdown();
	/* After the transactions: open NOTIFY transactions report to it. */
	presence_shutdown();
	loc_shutdown();
	ratelimit_shutdown();
	authn_shutdown();
	tp_shutdown();
	uv_close((uv_handle_t *)&S.sigterm, NULL);
	uv_close((uv_handle_t *)&S.sigint, NULL);
	uv_close((uv_handle_t *)&S.sigusr1, NULL);
	LOGI("server", "stopped");
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (S.stopping) {
		LOGW("server", "second signal: exiting at once");
		exit(1);
	}
	S.stopping = true;
	LOGI("server", "signal %d: stopping (finishing in-flight database writes)", signum);
	tp_stop_listening();
	/* XCAP requests waiting on the database are answered into the void
	 * (their connections are closed here); their writes still commit. */
	http_shutdown();
	presence_stop();
	/* db_shutdown lets queued and in-flight queries (the batch whose
	 * clients wait for 200) finish before it closes the pool. */
	db_shutdown(db_closed, NULL);
}

/* SIGUSR1 writes one line of counters, for operators and benchmarks. */
static void on_stats_signal(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	tp_stats_t ts;
	txn_stats_t xs;
	tp_get_stats(&ts);
	txn_get_stats(&xs);
	LOGI("stats", "udp_rx=%llu udp_tx=%llu tcp_rx=%llu tcp_tx=%llu dropped=%llu tcp_conns=%u "
	     "server_txns=%lu client_txns=%lu absorbed=%lu aors=%lu bindings=%lu db_queue=%u",
	     (unsigned long long)ts.udp_rx, (unsigned long long)ts.udp_tx,
	     (unsigned long long)ts.tcp_rx, (unsigned long long)ts.tcp_tx,
	     (unsigned long long)ts.dropped, ts.tcp_conns, xs.server_live, xs.client_live,
	     xs.retransmissions_absorbed, loc_aor_count(), loc_binding_count(), db_queue_length());
}

static void on_db_state(void *ctx, bool up)
{
	(void)ctx;
	if (!up || S.ready_logged)
		return;
	S.ready_logged = true;
	LOGI("server", "ready: %zu listener(s), domain %s, auth %s", S.cfg->listen.n,
	     S.cfg->domain.n ? S.cfg->domain.items[0] : "-", S.cfg->auth ? "on" : "off");
}

/* XCAP on the same loop (option xcap_listen; "off" disables it). */
static int start_xcap(void)
{
	const char *listen = S.cfg->xcap_listen;
	if (!listen || !*listen || strcmp(listen, "off") == 0)
		return 0;
	xcap_options_t xo = {
		.retry_after_s = (unsigned)S.cfg->retry_after,
		.nonce_ttl_s = (unsigned)S.cfg->nonce_ttl,
		.is_local_domain = server_is_local_domain,
	};
	http_options_t ho = {.listen = listen, .max_body = XSTORE_MAX_DOC};
	if (xcap_init(&xo) != 0 || http_init(S.loop, &ho, xcap_handle, NULL) != 0) {
		LOGE("server", "cannot start the XCAP server on %s", listen);
		return -1;
	}
	return 0;
}

/* --- run ---------------------------------------------------------------- */

int server_run(const config_t *cfg)
{
	memset(&S, 0, sizeof S);
	S.cfg = cfg;
	S.loop = uv_default_loop();
	S.limits.max_headers = (size_t)cfg->max_headers;
	S.limits.max_body = (size_t)cfg->max_body_size;

	if (sipmsg_global_init() != 0) {
		LOGE("server", "libosip2 initialisation failed");
		return 1;
	}
	db_options_t dbo = {
		.conninfo = cfg->db,
		.nconns = (unsigned)cfg->db_pool_size,
		.max_queue = (unsigned)cfg->db_max_queue,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 5000,
	};
	if (db_init(S.loop, &dbo) != 0) {
		LOGE("server", "database pool initialisation failed");
		return 1;
	}
	authn_options_t ao = {
		.enabled = cfg->auth,
		.nonce_ttl_s = (unsigned)cfg->nonce_ttl,
		.cache_ttl_s = (unsigned)cfg->user_cache_ttl,
		.retry_after_s = (unsigned)cfg->retry_after,
		.nonce_secret = cfg->nonce_secret,
	};
	if (authn_init(&ao) != 0) {
		LOGE("server", "authentication initialisation failed");
		return 1;
	}
	loc_options_t lo = {.node_name = cfg->node_name, .max_pending = 50000};
	if (loc_init(S.loop, &lo, cfg->db) != 0)
		return 1;
	reg_options_t ro = {
		.min_expires = (unsigned)cfg->min_expires,
		.max_expires = (unsigned)cfg->max_expires,
		.default_expires = (unsigned)cfg->default_expires,
		.max_contacts = (unsigned)cfg->max_contacts,
		.retry_after = (unsigned)cfg->retry_after,
		.is_local_domain = server_is_local_domain,
		.is_local_target = registrar_host_ok,
	};
	reg_init(&ro);
	ratelimit_init((unsigned)cfg->max_requests_per_ip);
	router_add("REGISTER", reg_handle_register);
	router_add_supported("path");
	proxy_options_t pxo = {
		.redirect = cfg->redirect,
		.conninfo = cfg->db,
		.is_local_domain = server_is_local_domain,
		.is_local_address = server_is_local_address,
		.default_domain = cfg->domain.n ? cfg->domain.items[0] : NULL,
		.dialog_tracking = cfg->dialog_tracking,
		.loop = S.loop,
	};
	if (proxy_init(&pxo) != 0) {
		LOGE("server", "proxy initialisation failed");
		return 1;
	}
	static const char *const proxied[] = {"INVITE", "BYE", "UPDATE", "PRACK", "INFO", "REFER"};
	for (size_t i = 0; i < sizeof proxied / sizeof proxied[0]; i++)
		router_add(proxied[i], proxy_handle_request);
	router_add("CANCEL", proxy_handle_cancel);
	router_set_stray_ack(proxy_stray_ack);
	presence_options_t po = {
		.conninfo = cfg->db,
		.min_expires = (unsigned)cfg->min_expires,
		.max_expires = (unsigned)cfg->max_expires,
		.default_expires = 3600,
		.max_subscriptions_per_watcher = (unsigned)cfg->max_subscriptions_per_watcher,
		.max_publications_per_presentity = (unsigned)cfg->max_publications_per_presentity,
		.default_policy = cfg->presence_default_policy,
		.retry_after = (unsigned)cfg->retry_after,
		.auth = cfg->auth,
		.is_local_domain = server_is_local_domain,
		.notify_interval_ms = (unsigned)cfg->notify_interval_ms,
		.node_name = cfg->node_name,
		.cc_queue_expires = (unsigned)cfg->cc_queue_expires,
	};
	if (presence_init(S.loop, &po) != 0) {
		LOGE("server", "presence initialisation failed");
		return 1;
	}
	msg_options_t mo = {
		.loop = S.loop,
		.conninfo = cfg->db,
		.node_name = cfg->node_name,
		.retry_after_s = (unsigned)cfg->retry_after,
		.is_local_domain = server_is_local_domain,
		.is_local_address = server_is_local_address,
		.default_domain = cfg->domain.n ? cfg->domain.items[0] : NULL,
	};
	if (msg_init(&mo) != 0) {
		LOGE("server", "messaging initialisation failed");
		return 1;
	}
	router_add("MESSAGE", msg_handle_message);
	if (start_xcap() != 0)
		return 1;

	txn_timers_t tt = {(unsigned)cfg->timer_t1_ms, (unsigned)cfg->timer_t2_ms,
			   (unsigned)cfg->timer_t4_ms};
	txn_init(S.loop, &tt);
	tp_limits_t tl = {
		.max_msg_size = (size_t)cfg->max_message_size,
		.max_tcp_conns = (unsigned)cfg->max_tcp_connections,
		.max_tcp_conns_per_ip = (unsigned)cfg->max_tcp_connections_per_ip,
		.tcp_idle_timeout_s = (unsigned)cfg->tcp_idle_timeout,
		.tcp_header_timeout_s = (unsigned)cfg->tcp_header_timeout,
	};
	if (tp_init(S.loop, &tl, on_message, on_stream_error, NULL) != 0) {
		LOGE("server", "transport initialisation failed");
		return 1;
	}
	if (open_listeners() != 0)
		return 1;

	uv_signal_init(S.loop, &S.sigterm);
	uv_signal_start(&S.sigterm, on_signal, SIGTERM);
	uv_signal_init(S.loop, &S.sigint);
	uv_signal_start(&S.sigint, on_signal, SIGINT);
	uv_signal_init(S.loop, &S.sigusr1);
	uv_signal_start(&S.sigusr1, on_stats_signal, SIGUSR1);
	uv_unref((uv_handle_t *)&S.sigusr1);
	signal(SIGPIPE, SIG_IGN);

	/* "ready" means ready to answer 2xx: it waits for the database pool
	 * (requests that arrive before get 503), so scripts that wait for it
	 * never see a start-up 503. */
	db_set_state_cb(on_db_state, NULL);
	if (db_is_up())
		on_db_state(NULL, true);
	uv_run(S.loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(S.loop);
	if (rc != 0)
		LOGD("server", "loop closed with handles still open (%s)", uv_strerror(rc));
	return 0;
}
