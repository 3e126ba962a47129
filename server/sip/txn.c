/* RFC 3261 §17 transactions: server (INVITE and non-INVITE) and
 * non-INVITE client, with an O(1) index and FIFO timer lists (see txn.h). */
#include "server/sip/txn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/base/htable.h"
#include "server/base/log.h"

/* ST_ACCEPTED: an INVITE server transaction that sent a 2xx (RFC 6026
 * §7.1): it absorbs retransmitted INVITEs and relays further 2xx. */
enum txn_state { ST_TRYING, ST_PROCEEDING, ST_COMPLETED, ST_CONFIRMED, ST_ACCEPTED,
		 ST_TERMINATED };
/* LIST_C: an INVITE client transaction that got a provisional no longer
 * runs Timer B; it waits at most Timer C (RFC 3261 §16.6 step 11, > 3
 * minutes) for a final response. */
enum txn_list { LIST_NONE = -1, LIST_64T1 = 0, LIST_T4 = 1, LIST_C = 2, LIST_COUNT };
#define TIMER_C_MS 181000u
#define RTX_LISTS 16

struct txn {
	hnode_t node;
	char *key;
	unsigned refs;
	bool client, invite, reliable;
	bool light;          /* client: its callback reads no more than a scanned response */
	enum txn_state state;
	sipmsg_t *req;       /* server: the request, until the final response */
	tp_peer_t dest;      /* server: where responses go; client: where the request goes */
	char *out;           /* server: last response sent; client: request bytes */
	size_t out_len;
	int last_code;
	char to_tag[20];
	/* Retransmission timer (E, G, A): membership in the FIFO list of
	 * its current interval (see rtx_start). */
	struct txn *rprev, *rnext;
	int rlist;
	uint64_t rdeadline;
	unsigned rtx_interval;
	struct txn *lprev, *lnext;
	int list;
	uint64_t deadline;
	txn_response_cb cb;
	void *cb_arg;
	bool cb_done;
	char *ack;           /* INVITE client: the ACK sent for a non-2xx final */
	size_t ack_len;
	sipmsg_t *creq;      /* INVITE client: our request, parsed, to build that ACK */
};

static struct {
	uv_loop_t *loop;
	txn_timers_t tm;
	htable_t table;
	uv_timer_t sweep;
	bool sweep_started;
	struct { txn_t *head, *tail; } lists[LIST_COUNT];
	/* Retransmission lists, one per interval in use (T1, 2*T1, ... T2,
	 * and beyond T2 for Timer A): each holds transactions waiting the
	 * same time, so each stays sorted by deadline. */
	struct { unsigned interval; txn_t *head, *tail; } rlists[RTX_LISTS];
	int nrlists;
	txn_stats_t stats;
} T;

/* --- FIFO timer lists --------------------------------------------------- */

static void list_remove(txn_t *t)
{
	if (t->list == LIST_NONE)
		return;
	if (t->lprev)
		t->lprev->lnext = t->lnext;
	else
		T.lists[t->list].head = t->lnext;
	if (t->lnext)
		t->lnext->lprev = t->lprev;
	else
		T.lists[t->list].tail = t->lprev;
	t->lprev = t->lnext = NULL;
	t->list = LIST_NONE;
}

static void list_push(txn_t *t, int list)
{
	list_remove(t);
	uint64_t dur = list == LIST_64T1 ? 64ULL * T.tm.t1_ms : list == LIST_T4 ? T.tm.t4_ms : TIMER_C_MS;
	t->deadline = uv_now(T.loop) + dur;
	t->list = list;
	t->lprev = T.lists[list].tail;
	t->lnext = NULL;
	if (T.lists[list].tail)
		T.lists[list].tail->lnext = t;
	else
		T.lists[list].head = t;
	T.lists[list].tail = t;
}

/* --- life cycle --------------------------------------------------------- */

void txn_ref(txn_t *t) { t->refs++; }

void txn_unref(txn_t *t)
{
	if (!t || --t->refs > 0)
		return;
	if (t->client)
		T.stats.client_live--;
	else
		T.stats.server_live--;
	sipmsg_free(t->req);
	sipmsg_free(t->creq);
	free(t->out);
	free(t->ack);
	free(t->key);
	free(t);
}

static void rtx_stop(txn_t *t)
{
	if (t->rlist < 0)
		return;
	if (t->rprev)
		t->rprev->rnext = t->rnext;
	else
		T.rlists[t->rlist].head = t->rnext;
	if (t->rnext)
		t->rnext->rprev = t->rprev;
	else
		T.rlists[t->rlist].tail = t->rprev;
	t->rprev = t->rnext = NULL;
	t->rlist = -1;
}

static int rtx_list_for(unsigned interval)
{
	for (int i = 0; i < T.nrlists; i++) {
		if (T.rlists[i].interval == interval)
			return i;
	}
	if (T.nrlists == RTX_LISTS)
		return -1;
	T.rlists[T.nrlists].interval = interval;
	return T.nrlists++;
}

/* Schedules the next retransmission in interval ms.  No timer handle per
 * transaction: the sweep timer pops list heads that are due. */
static void rtx_start(txn_t *t, unsigned interval)
{
	if (t->reliable)
		return;
	rtx_stop(t);
	int l = rtx_list_for(interval);
	if (l < 0)
		return; /* no retransmissions; the peer's own timers cover us */
	t->rtx_interval = interval;
	t->rdeadline = uv_now(T.loop) + interval;
	t->rlist = l;
	t->rprev = T.rlists[l].tail;
	t->rnext = NULL;
	if (T.rlists[l].tail)
		T.rlists[l].tail->rnext = t;
	else
		T.rlists[l].head = t;
	T.rlists[l].tail = t;
}

static void terminate(txn_t *t)
{
	if (t->state == ST_TERMINATED)
		return;
	t->state = ST_TERMINATED;
	list_remove(t);
	rtx_stop(t);
	htable_remove(&T.table, &t->node);
	txn_unref(t); /* the table's reference */
}

static void client_report(txn_t *t, const sipmsg_t *resp, int code, bool final)
{
	if (t->cb_done)
		return;
	if (final)
		t->cb_done = true;
	if (t->cb)
		t->cb(t->cb_arg, resp, code, final);
}

static void rtx_fire(txn_t *t)
{
	if (t->out && t->state != ST_TERMINATED)
		tp_send(&t->dest, t->out, t->out_len);
	unsigned next = t->rtx_interval * 2;
	if (t->client && t->state == ST_PROCEEDING)
		next = T.tm.t2_ms; /* Timer E after a provisional (§17.1.2.2) */
	/* Timer A doubles without bound until Timer B (§17.1.1.2); E and G
	 * are capped at T2. */
	if (next > T.tm.t2_ms && !(t->client && t->invite))
		next = T.tm.t2_ms;
	rtx_start(t, next);
}

static void expire(txn_t *t, int list)
{
	txn_ref(t);
	if (list == LIST_C) {
		/* Timer C: no final response to our INVITE in minutes; report a
		 * timeout (the proxy CANCELs the branch and answers 408). */
		client_report(t, NULL, 408, true);
		terminate(t);
	} else if (list == LIST_64T1) {
		if (t->client) {
			if (t->state == ST_TRYING || t->state == ST_PROCEEDING) {
				/* Timer F: report a timeout (RFC 3261 §17.1.2.2). */
				client_report(t, NULL, 408, true);
			}
			terminate(t);
		} else if (!t->invite && (t->state == ST_TRYING || t->state == ST_PROCEEDING)) {
			/* The handler never answered: a bug, but the client
			 * deserves an answer and the memory must come back. */
			LOGE("txn", "no answer within 64*T1 for %s %s; sending 500",
			     t->req ? t->req->method : "?", t->key);
			txn_reply(t, 500, "Server Internal Error - Request Timed Out", NULL, NULL, NULL, 0);
			terminate(t);
		} else {
			/* Timer J (non-INVITE completed) or H (no ACK came). */
			terminate(t);
		}
	} else {
		/* Timer I or K. */
		terminate(t);
	}
	txn_unref(t);
}

static void sweep_fire(uv_timer_t *h)
{
	uint64_t now = uv_now(T.loop);
	for (int l = 0; l < T.nrlists; l++) {
		/* A retransmitted transaction goes to the tail of a list with a
		 * later deadline, so this loop ends. */
		while (T.rlists[l].head && T.rlists[l].head->rdeadline <= now) {
			txn_t *t = T.rlists[l].head;
			rtx_stop(t);
			rtx_fire(t);
		}
	}
	for (int l = 0; l < LIST_COUNT; l++) {
		while (T.lists[l].head && T.lists[l].head->deadline <= now) {
			txn_t *t = T.lists[l].head;
			list_remove(t);
			expire(t, l);
		}
	}
	(void)h;
}

int txn_init(uv_loop_t *loop, const txn_timers_t *timers)
{
	memset(&T, 0, sizeof T);
	T.loop = loop;
	T.tm = *timers;
	if (!T.tm.t1_ms)
		T.tm.t1_ms = 500;
	if (!T.tm.t2_ms)
		T.tm.t2_ms = 4000;
	if (!T.tm.t4_ms)
		T.tm.t4_ms = 5000;
	int err = htable_init(&T.table, 4096);
	if (err)
		return err;
	uv_timer_init(loop, &T.sweep);
	/* The sweep also drives retransmissions, so it ticks at T1/5 (100 ms
	 * with the default T1): a retransmission is late by at most that. */
	unsigned period = T.tm.t1_ms / 5;
	if (period < 1)
		period = 1;
	if (period > 100)
		period = 100;
	uv_timer_start(&T.sweep, sweep_fire, period, period);
	/* The sweep timer alone must not keep the loop alive at shutdown. */
	uv_unref((uv_handle_t *)&T.sweep);
	T.sweep_started = true;
	return 0;
}

static void shutdown_one(hnode_t *n, void *arg)
{
	(void)arg;
	txn_t *t = container_of(n, txn_t, node);
	txn_ref(t);
	if (t->client)
		client_report(t, NULL, 503, true);
	terminate(t);
	txn_unref(t);
}

void txn_shutdown(void)
{
	htable_foreach(&T.table, shutdown_one, NULL);
	if (T.sweep_started) {
		uv_timer_stop(&T.sweep);
		uv_close((uv_handle_t *)&T.sweep, NULL);
		T.sweep_started = false;
	}
	htable_destroy(&T.table);
}

/* --- keys --------------------------------------------------------------- */

static bool key_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, txn_t, node)->key, key) == 0;
}

static txn_t *find(const char *key)
{
	hnode_t *n = htable_find(&T.table, hash_str(key), key_eq, key);
	return n ? container_of(n, txn_t, node) : NULL;
}

/* RFC 3261 §17.2.3: branch + sent-by + method, where ACK matches the
 * INVITE; branches without the magic cookie fall back to the RFC 2543
 * identifiers.  Built in a growable buffer: identifiers are bounded only
 * by the message size limit.  Returns a new string or NULL. */
static char *server_key(const sipmsg_t *msg, const char *method)
{
	const osip_via_t *v = msg->via;
	const char *port = v->port ? v->port : "";
	buf_t b;
	buf_init(&b, 0);
	if (msg->branch && strncmp(msg->branch, "z9hG4bK", 7) == 0) {
		/* Appends, not printf: every request builds its key. */
		buf_put_lit(&b, "s|");
		buf_puts(&b, msg->branch);
		buf_put_lit(&b, "|");
		buf_puts(&b, v->host);
		buf_put_lit(&b, ":");
		buf_puts(&b, port);
		buf_put_lit(&b, "|");
		buf_puts(&b, method);
	} else {
		const char *ft = sipmsg_from_tag(msg);
		buf_printf(&b, "o|%s|%u|%s|%s:%s|%s|%s", sipmsg_call_id(msg), msg->cseq, ft ? ft : "",
			   v->host, port, msg->branch ? msg->branch : "", method);
	}
	if (b.err) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* --- server side -------------------------------------------------------- */

static txn_match_t match_key(sipmsg_t *msg, bool is_ack, const char *key, txn_t **out);

txn_match_t txn_server_match(sipmsg_t *msg, txn_t **out)
{
	*out = NULL;
	bool is_ack = strcmp(msg->method, "ACK") == 0;
	char *key = server_key(msg, is_ack ? "INVITE" : msg->method);
	if (!key)
		return TXN_MATCH_ABSORBED; /* out of memory: drop, the client retransmits */
	txn_match_t r = match_key(msg, is_ack, key, out);
	free(key);
	return r;
}

static txn_match_t match_key(sipmsg_t *msg, bool is_ack, const char *key, txn_t **out)
{
	txn_t *t = find(key);
	if (t) {
		if (is_ack) {
			if (t->state == ST_ACCEPTED)
				return TXN_MATCH_STRAY_ACK; /* RFC 6026 §8.7: to the TU */
			if (t->invite && t->state == ST_COMPLETED) {
				/* ACK of our non-2xx final: stop Timer G, start
				 * Timer I (§17.2.1). */
				t->state = ST_CONFIRMED;
				rtx_stop(t);
				if (t->reliable)
					terminate(t);
				else
					list_push(t, LIST_T4);
			}
			return TXN_MATCH_ABSORBED;
		}
		/* A retransmission: repeat the last response, if any. */
		T.stats.retransmissions_absorbed++;
		if (t->out && (t->state == ST_PROCEEDING || t->state == ST_COMPLETED ||
			       t->state == ST_TRYING))
			tp_send(&t->dest, t->out, t->out_len);
		return TXN_MATCH_ABSORBED;
	}
	if (is_ack)
		return TXN_MATCH_STRAY_ACK;

	t = calloc(1, sizeof *t);
	if (!t)
		return TXN_MATCH_ABSORBED;
	t->key = strdup(key);
	if (!t->key) {
		free(t);
		return TXN_MATCH_ABSORBED;
	}
	t->refs = 1;
	t->list = LIST_NONE;
	t->rlist = -1;
	t->invite = strcmp(msg->method, "INVITE") == 0;
	t->reliable = msg->src.proto == TP_TCP;
	t->state = ST_TRYING;
	t->req = msg;
	sipmsg_response_dest(msg, &t->dest);
	sip_random_token(t->to_tag, 17);
	htable_insert(&T.table, &t->node, hash_str(t->key));
	T.stats.server_live++;
	if (t->invite) {
		/* §17.2.1: a 100 Trying stops the client's INVITE
		 * retransmissions; we send it at once rather than after 200 ms
		 * because the proxy path almost always takes longer. */
		txn_reply(t, 100, NULL, NULL, NULL, NULL, 0);
	} else {
		list_push(t, LIST_64T1);
	}
	*out = t;
	return TXN_MATCH_NEW;
}

txn_t *txn_find_invite(const sipmsg_t *cancel)
{
	char *key = server_key(cancel, "INVITE");
	if (!key)
		return NULL;
	txn_t *t = find(key);
	free(key);
	return t;
}

sipmsg_t *txn_request(txn_t *t) { return t->req; }
const char *txn_to_tag(const txn_t *t) { return t->to_tag; }
bool txn_answered(const txn_t *t) { return t->last_code >= 200 || t->state >= ST_COMPLETED; }

/* Sends bytes (owned: taken) as the response with status code and moves
 * the state machine on; shared by txn_reply and txn_reply_raw. */
static int send_response(txn_t *t, int code, char *bytes, size_t len)
{
	bool another_2xx = t->state == ST_ACCEPTED && code >= 200 && code < 300;
	if ((t->last_code >= 200 && !another_2xx) || t->state == ST_TERMINATED) {
		free(bytes);
		return -EALREADY;
	}
	free(t->out);
	t->out = bytes;
	t->out_len = len;
	t->last_code = code;
	int err = tp_send(&t->dest, t->out, t->out_len);
	if (err)
		LOGD("txn", "sending %d failed: %s", code, uv_strerror(err));
	if (code < 200) {
		t->state = ST_PROCEEDING;
		return 0;
	}
	if (another_2xx)
		return 0;
	/* The request is not needed once the final response is out. */
	sipmsg_free(t->req);
	t->req = NULL;
	if (t->invite) {
		if (code < 300) {
			/* RFC 6026 §7.1: Accepted until Timer L (64*T1). */
			t->state = ST_ACCEPTED;
			list_push(t, LIST_64T1);
			return 0;
		}
		t->state = ST_COMPLETED;
		rtx_start(t, T.tm.t1_ms); /* Timer G */
		list_push(t, LIST_64T1);  /* Timer H */
		return 0;
	}
	t->state = ST_COMPLETED;
	if (t->reliable)
		terminate(t); /* Timer J is zero on reliable transports */
	else
		list_push(t, LIST_64T1); /* Timer J */
	return 0;
}

int txn_reply(txn_t *t, int code, const char *reason, const char *extra,
	      const char *ctype, const char *body, size_t bodylen)
{
	if (t->client || !t->req)
		return -EINVAL;
	if (t->last_code >= 200 || t->state == ST_TERMINATED)
		return -EALREADY;
	/* Built in one reused buffer, kept in an exact copy: a completed
	 * transaction holds its response for Timer J (32 s), hundreds of
	 * thousands of them under load, so slack in each block adds up. */
	static buf_t scratch;
	buf_reset(&scratch);
	int err = sipmsg_build_response(t->req, code, reason, t->to_tag, extra, ctype, body,
					bodylen, &scratch);
	if (err) {
		buf_free(&scratch);
		return err;
	}
	char *bytes = malloc(scratch.len);
	if (!bytes)
		return -ENOMEM;
	memcpy(bytes, scratch.data, scratch.len);
	size_t len = scratch.len;
	if (scratch.cap > 256 * 1024)
		buf_free(&scratch); /* a huge body: do not keep its room */
	return send_response(t, code, bytes, len);
}

int txn_reply_raw(txn_t *t, int code, const char *bytes, size_t len)
{
	if (t->client || code < 100 || code > 699 || !bytes || !len)
		return -EINVAL;
	char *copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, bytes, len);
	return send_response(t, code, copy, len);
}

/* --- client side -------------------------------------------------------- */

/* "c|BRANCH|METHOD": the key of a client transaction (§17.1.3). */
static int client_key(char *key, size_t size, const char *branch, size_t blen, const char *method,
		      size_t mlen)
{
	if (blen + mlen + 4 > size)
		return -ENOSPC;
	char *p = key;
	*p++ = 'c';
	*p++ = '|';
	memcpy(p, branch, blen);
	p += blen;
	*p++ = '|';
	memcpy(p, method, mlen);
	p[mlen] = '\0';
	return 0;
}

void txn_new_branch(char *out, size_t outlen)
{
	char tok[25];
	sip_random_token(tok, sizeof tok);
	char full[7 + sizeof tok];
	memcpy(full, "z9hG4bK", 7);
	memcpy(full + 7, tok, sizeof tok);
	if (!outlen)
		return;
	size_t n = outlen - 1 < sizeof full - 1 ? outlen - 1 : sizeof full - 1;
	memcpy(out, full, n);
	out[n] = '\0';
}

void txn_new_light_branch(char *out, size_t outlen)
{
	char tok[22];
	sip_random_token(tok, sizeof tok);
	char full[sizeof TXN_LIGHT_BRANCH_MARK - 1 + sizeof tok];
	memcpy(full, TXN_LIGHT_BRANCH_MARK, sizeof TXN_LIGHT_BRANCH_MARK - 1);
	memcpy(full + sizeof TXN_LIGHT_BRANCH_MARK - 1, tok, sizeof tok);
	if (!outlen)
		return;
	size_t n = outlen - 1 < sizeof full - 1 ? outlen - 1 : sizeof full - 1;
	memcpy(out, full, n);
	out[n] = '\0';
}

int txn_client_start(const tp_peer_t *dst, const char *branch, const char *method,
		     const char *bytes, size_t len, txn_response_cb cb, void *arg)
{
	return txn_client_start_flags(dst, branch, method, bytes, len, cb, arg, 0);
}

int txn_client_start_flags(const tp_peer_t *dst, const char *branch, const char *method,
			   const char *bytes, size_t len, txn_response_cb cb, void *arg,
			   unsigned flags)
{
	if (strcmp(method, "ACK") == 0)
		return -EINVAL; /* an ACK is not a transaction (§17) */
	if ((flags & TXN_LIGHT_RESPONSE) && strcmp(method, "INVITE") == 0)
		return -EINVAL; /* the ACK of a non-2xx needs the parsed To */
	sipmsg_t *creq = NULL;
	if (strcmp(method, "INVITE") == 0) {
		/* Keep our INVITE parsed: the ACK of a non-2xx final response
		 * copies its Request-URI, top Via, From, Call-ID, CSeq number
		 * and Route (§17.1.1.3). */
		static const sip_limits_t nolimits = {0, 0};
		char why[64];
		if (sipmsg_parse(bytes, len, dst, &nolimits, &creq, why, sizeof why) != 0)
			return -EINVAL;
	}
	char key[512];
	if (client_key(key, sizeof key, branch, strlen(branch), method, strlen(method)) != 0)
		return -ENOSPC;
	txn_t *t = find(key) ? NULL : calloc(1, sizeof *t);
	if (!t) {
		sipmsg_free(creq);
		return find(key) ? -EEXIST : -ENOMEM;
	}
	t->key = strdup(key);
	t->out = malloc(len);
	if (!t->key || !t->out) {
		sipmsg_free(creq);
		free(t->key);
		free(t->out);
		free(t);
		return -ENOMEM;
	}
	t->invite = creq != NULL;
	t->light = (flags & TXN_LIGHT_RESPONSE) != 0;
	t->creq = creq;
	t->rlist = -1;
	memcpy(t->out, bytes, len);
	t->out_len = len;
	t->refs = 1;
	t->list = LIST_NONE;
	t->client = true;
	t->dest = *dst;
	t->reliable = dst->proto == TP_TCP;
	t->cb = cb;
	t->cb_arg = arg;
	t->state = ST_TRYING;
	int err = tp_send(&t->dest, t->out, t->out_len);
	if (err) {
		sipmsg_free(t->creq);
		free(t->key);
		free(t->out);
		free(t);
		return err;
	}
	htable_insert(&T.table, &t->node, hash_str(t->key));
	T.stats.client_live++;
	rtx_start(t, T.tm.t1_ms); /* Timer E, or A for INVITE */
	list_push(t, LIST_64T1);  /* Timer F, or B for INVITE */
	return 0;
}

/* The ACK of a non-2xx final response to our INVITE (§17.1.1.3). */
static int build_ack(txn_t *t, const sipmsg_t *resp)
{
	osip_message_t *req = t->creq->m;
	buf_t b;
	buf_init(&b, 0);
	char *ruri = NULL, *via = NULL, *from = NULL, *to = NULL;
	if (osip_uri_to_str(req->req_uri, &ruri) != 0 ||
	    osip_via_to_str(t->creq->via, &via) != 0 ||
	    osip_from_to_str(req->from, &from) != 0 ||
	    osip_to_to_str(resp->m->to, &to) != 0) {
		osip_free(ruri);
		osip_free(via);
		osip_free(from);
		osip_free(to);
		return -ENOMEM;
	}
	buf_printf(&b, "ACK %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
		       "Call-ID: %s\r\nCSeq: %u ACK\r\n",
		   ruri, via, from, to, sipmsg_call_id(t->creq), t->creq->cseq);
	for (int i = 0;; i++) {
		osip_route_t *r = osip_list_get(&req->routes, i);
		if (!r)
			break;
		char *rs = NULL;
		if (osip_route_to_str(r, &rs) == 0 && rs) {
			buf_printf(&b, "Route: %s\r\n", rs);
			osip_free(rs);
		}
	}
	buf_puts(&b, "Content-Length: 0\r\n\r\n");
	osip_free(ruri);
	osip_free(via);
	osip_free(from);
	osip_free(to);
	if (b.err) {
		buf_free(&b);
		return -ENOMEM;
	}
	free(t->ack);
	t->ack = buf_steal(&b, &t->ack_len);
	return 0;
}

/* A completed client transaction only absorbs retransmitted responses
 * (Timer D or K, up to 32 s): its request is never sent again, so its
 * bytes go now.  Under a NOTIFY fan-out of 15,000/s this is most of the
 * transactions' memory. */
static void drop_request_bytes(txn_t *t)
{
	free(t->out);
	t->out = NULL;
	t->out_len = 0;
}

/* Runs the client state machine (§17.1.1.2, §17.1.2.2) for a response
 * that matched t. */
static void client_deliver(txn_t *t, const sipmsg_t *resp)
{
	int code = resp->status;
	if (t->state == ST_COMPLETED || t->state == ST_TERMINATED) {
		/* A retransmitted final response; for INVITE, ACK it again
		 * (Timer D keeps us here for that, §17.1.1.2). */
		if (t->invite && t->ack && code >= 300)
			tp_send(&t->dest, t->ack, t->ack_len);
		return;
	}
	txn_ref(t);
	if (code < 200) {
		t->state = ST_PROCEEDING;
		if (t->invite) {
			rtx_stop(t); /* a provisional stops Timer A */
			if (t->list == LIST_64T1)
				list_push(t, LIST_C); /* ...and Timer B: Timer C now */
		}
		client_report(t, resp, code, false);
	} else if (t->invite && code < 300) {
		/* 2xx: the transaction ends; the TU sends the ACK and absorbs
		 * 2xx retransmissions (§17.1.1.2, RFC 6026). */
		rtx_stop(t);
		client_report(t, resp, code, true);
		terminate(t);
	} else if (t->invite) {
		rtx_stop(t);
		if (build_ack(t, resp) == 0)
			tp_send(&t->dest, t->ack, t->ack_len);
		t->state = ST_COMPLETED;
		drop_request_bytes(t);
		client_report(t, resp, code, true);
		if (t->reliable)
			terminate(t);
		else
			list_push(t, LIST_64T1); /* Timer D: at least 32 s */
	} else {
		t->state = ST_COMPLETED;
		rtx_stop(t);
		drop_request_bytes(t);
		client_report(t, resp, code, true);
		if (t->reliable)
			terminate(t);
		else
			list_push(t, LIST_T4); /* Timer K */
	}
	txn_unref(t);
}

static txn_t *client_find(const char *branch, size_t blen, const char *method, size_t mlen)
{
	char key[512];
	if (client_key(key, sizeof key, branch, blen, method, mlen) != 0)
		return NULL;
	return find(key);
}

bool txn_client_match(const sipmsg_t *resp)
{
	if (!resp->branch)
		return false;
	txn_t *t = client_find(resp->branch, strlen(resp->branch), resp->method, strlen(resp->method));
	if (!t)
		return false;
	client_deliver(t, resp);
	return true;
}

bool txn_client_match_raw(const char *data, size_t len, const tp_peer_t *src,
			  const sip_limits_t *lim)
{
	/* Only answers to light branches are worth a scan. */
	static const char mark[] = "branch=" TXN_LIGHT_BRANCH_MARK;
	if (!memmem(data, len, mark, sizeof mark - 1))
		return false;
	sip_resp_view_t v;
	if (sipmsg_scan_response(data, len, lim, &v) != 0)
		return false;
	txn_t *t = client_find(v.branch, v.branch_len, v.method, v.method_len);
	if (!t || !t->light)
		return false;
	/* The view the callback sees: the scanned fields only (m == NULL). */
	char branch[260], method[36], reason[128];
	memcpy(branch, v.branch, v.branch_len);
	branch[v.branch_len] = '\0';
	memcpy(method, v.method, v.method_len);
	method[v.method_len] = '\0';
	size_t rl = v.reason_len < sizeof reason - 1 ? v.reason_len : sizeof reason - 1;
	memcpy(reason, v.reason, rl);
	reason[rl] = '\0';
	sipmsg_t resp = {
		.src = *src,
		.is_request = false,
		.method = method,
		.branch = branch,
		.cseq = v.cseq,
		.status = v.status,
		.reason = reason,
	};
	client_deliver(t, &resp);
	return true;
}

void txn_get_stats(txn_stats_t *out) { *out = T.stats; }
