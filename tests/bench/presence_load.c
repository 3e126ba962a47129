/* presence_load: a small load generator for simpled's presence server
 * (scripts/bench.sh presence).  Plain POSIX UDP sockets and epoll; no SIP
 * library: requests are built with snprintf and only what is needed is
 * parsed from what comes back (status code, Call-ID, CSeq, To tag,
 * SIP-ETag, the <note> of a NOTIFY body), and every NOTIFY is answered
 * 200 with its Via/From/To/Call-ID/CSeq copied.
 *
 *   presence_load MODE --server 127.0.0.1:PORT [options]
 *
 * Modes (each prints one "key=value ..." line per measured phase on
 * stdout and exits by itself within --deadline seconds):
 *
 *   publish    --presentities N [--modify-rounds K] [--refresh-rounds K]
 *              Initial PUBLISH for N distinct presentities, then K rounds
 *              of modify (SIP-If-Match + new PIDF) over all of them, then
 *              K rounds of refresh (SIP-If-Match, no body).
 *   subscribe  --presentities P --watchers W
 *              P initial PUBLISHes (setup), then P*W subscriptions from
 *              distinct watcher AORs; one is done when its 200 and its
 *              first NOTIFY (answered 200) have both arrived.
 *   fanout     --presentities P --watchers W --rate R[,R2...] --duration D
 *              Setup as subscribe, then for each rate R: PUBLISH modifies
 *              at R/s (round robin over presentities, at most one
 *              outstanding per presentity) for D seconds, counting the
 *              NOTIFYs received and the publish-to-notify latency (each
 *              PIDF <note> carries "pl s=SEQ t=NANOSECONDS").
 *   memory     --presentities P --watchers W --pid PID [--hold S]
 *              Setup publications, read VmRSS of PID, subscribe P*W
 *              dialogs, read VmRSS again, wait S seconds (the server's
 *              transactions expire: Timer J is 64*T1 = 32 s), read again.
 *   rls        --presentities P --lists L --rate R[,R2...] --duration D --pid PID
 *              Resource lists (RFC 4662): P initial PUBLISHes, then L list
 *              subscriptions (watcher sip:PREFIXoI@D to sip:PREFIXoI-buddies@D,
 *              Supported: eventlist; the lists are put in the database by
 *              scripts/bench.sh before the server starts), VmRSS before and
 *              after; then for each rate R, PUBLISH modifies at R/s as in
 *              fanout, counting list NOTIFYs, their bytes and the
 *              publish-to-notify latency of the first part's <note>.
 *   ping       OPTIONS every 100 ms until the server answers (readiness).
 *
 * Common options: --window N (outstanding requests, 2000), --sockets N
 * (watcher UDP sockets, 16), --prefix S (AOR prefix), --domain D
 * (example.test), --expires S (3600), --deadline S (overall, 120).
 *
 * Requests unanswered are retransmitted (0.5 s, doubling, like Timer E)
 * and fail after 16 s. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKS 64
#define RX_BATCH 64
#define RX_BUFSZ 65536 /* a full-state list NOTIFY of 50 PIDF parts is ~30 KB */
#define GIVE_UP_NS (16ULL * 1000000000ULL)
#define RTO0_NS (500ULL * 1000000ULL)
#define ETAG_MAX 64
#define TAG_MAX 48

/* --- options and global state ------------------------------------------ */

static struct {
	const char *mode;
	struct sockaddr_in server;
	char server_str[64];
	unsigned presentities, watchers, window, nsocks, expires, lists;
	unsigned modify_rounds, refresh_rounds;
	double rates[16];
	int nrates;
	double duration, hold, deadline;
	const char *prefix, *domain;
	int pid;
	int verbose;
} O = {
	.presentities = 1000,
	.watchers = 10,
	.window = 2000,
	.nsocks = 16,
	.expires = 3600,
	.modify_rounds = 2,
	.refresh_rounds = 1,
	.duration = 8,
	.hold = 35,
	.deadline = 120,
	.prefix = "pl",
	.domain = "example.test",
};

typedef struct sock {
	int fd;
	uint16_t port;
} sock_t;

static sock_t S[MAX_SOCKS + 1]; /* S[0]: publisher; 1..nsocks: watchers */
static int nS;
static int epfd;
static char RUN[12]; /* run token: Call-IDs, tags, branches */
static uint64_t T0, DEADLINE;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "presence_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "presence_load: [%6.2fs] ", (double)(now_ns() - T0) / 1e9);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* --- latency samples --------------------------------------------------- */

typedef struct samples {
	uint32_t *v; /* microseconds */
	size_t n, cap;
} samples_t;

static void samp_add(samples_t *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uint32_t *p = realloc(s->v, cap * sizeof *p);
		if (!p)
			return;
		s->v = p;
		s->cap = cap;
	}
	uint64_t us = ns / 1000;
	s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* "p50_ms=.. p99_ms=.. max_ms=.." of s (sorted in place). */
static const char *samp_str(samples_t *s, char *out, size_t len)
{
	if (!s->n) {
		snprintf(out, len, "p50_ms=n/a p99_ms=n/a max_ms=n/a");
		return out;
	}
	qsort(s->v, s->n, sizeof *s->v, cmp_u32);
	size_t i50 = s->n / 2, i99 = (size_t)((double)s->n * 0.99);
	if (i99 >= s->n)
		i99 = s->n - 1;
	snprintf(out, len, "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f", s->v[i50] / 1000.0, s->v[i99] / 1000.0,
		 s->v[s->n - 1] / 1000.0);
	return out;
}

static void samp_reset(samples_t *s) { s->n = 0; }

/* --- sockets ------------------------------------------------------------ */

static void open_socks(void)
{
	epfd = epoll_create1(0);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	nS = (int)O.nsocks + 1;
	for (int i = 0; i < nS; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		int v = 4 << 20;
		/* As root the limit of net.core.rmem_max does not apply. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
		struct sockaddr_in a = {.sin_family = AF_INET};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
			die("bind: %s", strerror(errno));
		socklen_t al = sizeof a;
		getsockname(fd, (struct sockaddr *)&a, &al);
		S[i].fd = fd;
		S[i].port = ntohs(a.sin_port);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll_ctl: %s", strerror(errno));
	}
}

static unsigned long tx_eagain, tx_err;

static void sock_send(int si, const char *buf, size_t len)
{
	for (;;) {
		ssize_t n = sendto(S[si].fd, buf, len, 0, (struct sockaddr *)&O.server, sizeof O.server);
		if (n >= 0)
			return;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/* Full send buffer: the retransmission timer covers it. */
			tx_eagain++;
			return;
		}
		tx_err++;
		return;
	}
}

/* --- presentities and subscriptions -------------------------------------- */

enum { P_IDLE, P_OUT };
enum { OP_INITIAL, OP_MODIFY, OP_REFRESH };

typedef struct pres {
	uint32_t cseq, seq, tries;
	uint8_t state, op;
	bool published;
	uint64_t t_first, t_last, tx_t; /* tx_t: the t= of the body being sent */
	char etag[ETAG_MAX];
} pres_t;

enum { S_NONE, S_SENT, S_DONE, S_FAILED };

typedef struct sub {
	uint32_t pres, last_notify_cseq, last_seq, tries;
	uint8_t state, sock;
	bool got200, gotnotify;
	uint64_t t_first, t_last;
	char totag[TAG_MAX];
} sub_t;

static pres_t *PR;
static unsigned NPR;
static sub_t *SB;
static unsigned NSB;

/* Statistics of the current phase, reset by phase_begin(). */
static struct {
	unsigned long ok, failed, started;
	unsigned long codes[7]; /* by class: 2xx.. 6xx */
	int last_bad_code;
	samples_t lat;
	/* NOTIFYs */
	unsigned long notifies, notify_rtx, states, stale, notifies_window;
	unsigned long long notify_bytes; /* datagram bytes of the NOTIFYs counted */
	samples_t p2n;
	bool measuring;
	uint64_t win_start, win_end;
} ST;

static unsigned long notifies_total;
static uint64_t last_notify_ns;

static void aor_pres(unsigned i, char *out, size_t len)
{
	snprintf(out, len, "sip:%sp%u@%s", O.prefix, i, O.domain);
}

static void aor_watcher(unsigned i, char *out, size_t len)
{
	snprintf(out, len, "sip:%sw%u@%s", O.prefix, i, O.domain);
}

static void send_publish(unsigned i, bool retransmit)
{
	pres_t *p = &PR[i];
	char aor[160], body[600], msg[2048], hdr[160] = "", branch[64];
	aor_pres(i, aor, sizeof aor);
	int blen = 0;
	if (p->op != OP_REFRESH) {
		blen = snprintf(body, sizeof body,
				"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"%s\">\n"
				"<tuple id=\"t1\"><status><basic>%s</basic></status></tuple>\n"
				"<note>pl s=%u t=%" PRIu64 "</note>\n"
				"</presence>\n",
				aor, (p->seq & 1) ? "closed" : "open", p->seq, p->tx_t);
	}
	if (p->op != OP_INITIAL)
		snprintf(hdr, sizeof hdr, "SIP-If-Match: %s\r\n", p->etag);
	/* The branch changes per transaction, not per retransmission: it is
	 * derived from the CSeq. */
	snprintf(branch, sizeof branch, "z9hG4bK%s.P%u.%u", RUN, i, p->cseq);
	(void)retransmit;
	int n = snprintf(msg, sizeof msg,
			 "PUBLISH %s SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s;rport\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <%s>;tag=%sP%u\r\n"
			 "To: <%s>\r\n"
			 "Call-ID: P%u.%s@pl\r\n"
			 "CSeq: %u PUBLISH\r\n"
			 "Event: presence\r\n"
			 "Expires: %u\r\n"
			 "%s"
			 "%s"
			 "Content-Length: %d\r\n\r\n%s",
			 aor, S[0].port, branch, aor, RUN, i, aor, i, RUN, p->cseq, O.expires, hdr,
			 blen ? "Content-Type: application/pidf+xml\r\n" : "", blen, blen ? body : "");
	if (n < 0 || (size_t)n >= sizeof msg)
		die("PUBLISH too long");
	sock_send(0, msg, (size_t)n);
}

static void start_publish(unsigned i, int op)
{
	pres_t *p = &PR[i];
	p->op = (uint8_t)op;
	p->cseq++;
	if (op != OP_REFRESH)
		p->seq++;
	p->state = P_OUT;
	p->tries = 0;
	p->t_first = p->t_last = now_ns();
	p->tx_t = p->t_first;
	ST.started++;
	send_publish(i, false);
}

static void send_subscribe(unsigned j)
{
	sub_t *s = &SB[j];
	char res[160], w[160], msg[2048];
	aor_pres(s->pres, res, sizeof res);
	aor_watcher(j, w, sizeof w);
	const char *accept = "application/pidf+xml";
	if (O.lists) {
		/* A list subscription: the owner to its list service. */
		snprintf(res, sizeof res, "sip:%so%u-buddies@%s", O.prefix, j, O.domain);
		snprintf(w, sizeof w, "sip:%so%u@%s", O.prefix, j, O.domain);
		accept = "multipart/related, application/rlmi+xml, application/pidf+xml\r\n"
			 "Supported: eventlist";
	}
	unsigned port = S[s->sock].port;
	int n = snprintf(msg, sizeof msg,
			 "SUBSCRIBE %s SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK%s.S%u.1;rport\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <%s>;tag=%sS%u\r\n"
			 "To: <%s>\r\n"
			 "Call-ID: S%u.%s@pl\r\n"
			 "CSeq: 1 SUBSCRIBE\r\n"
			 "Contact: <sip:%sw%u@127.0.0.1:%u>\r\n"
			 "Event: presence\r\n"
			 "Accept: %s\r\n"
			 "Expires: %u\r\n"
			 "Content-Length: 0\r\n\r\n",
			 res, port, RUN, j, w, RUN, j, res, j, RUN, O.prefix, j, port, accept, O.expires);
	if (n < 0 || (size_t)n >= sizeof msg)
		die("SUBSCRIBE too long");
	sock_send(s->sock, msg, (size_t)n);
}

static void start_subscribe(unsigned j)
{
	sub_t *s = &SB[j];
	s->state = S_SENT;
	s->tries = 0;
	s->got200 = s->gotnotify = false;
	s->t_first = s->t_last = now_ns();
	ST.started++;
	send_subscribe(j);
}

/* --- parsing -------------------------------------------------------------- */

typedef struct hdr {
	const char *p;
	size_t n;
} hdr_t;

typedef struct parsed {
	bool is_response;
	int code;
	hdr_t method;
	hdr_t via[8];
	int nvia;
	hdr_t from, to, callid, cseq, etag;
	const char *body;
	size_t bodylen;
} parsed_t;

static bool name_is(const char *p, size_t n, const char *full, const char *compact)
{
	return (strlen(full) == n && strncasecmp(p, full, n) == 0) ||
	       (compact && strlen(compact) == n && strncasecmp(p, compact, n) == 0);
}

static int parse(char *buf, size_t len, parsed_t *m)
{
	memset(m, 0, sizeof *m);
	buf[len] = '\0';
	char *eol = strstr(buf, "\r\n");
	if (!eol)
		return -1;
	if (len > 8 && strncmp(buf, "SIP/2.0 ", 8) == 0) {
		m->is_response = true;
		m->code = atoi(buf + 8);
	} else {
		char *sp = memchr(buf, ' ', (size_t)(eol - buf));
		if (!sp)
			return -1;
		m->method.p = buf;
		m->method.n = (size_t)(sp - buf);
	}
	char *line = eol + 2;
	for (;;) {
		eol = strstr(line, "\r\n");
		if (!eol)
			return -1;
		if (eol == line) {
			m->body = eol + 2;
			m->bodylen = len - (size_t)(m->body - buf);
			return 0;
		}
		char *colon = memchr(line, ':', (size_t)(eol - line));
		if (colon) {
			char *ne = colon;
			while (ne > line && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			size_t nn = (size_t)(ne - line);
			char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			hdr_t whole = {line, (size_t)(eol - line)};
			hdr_t val = {v, (size_t)(eol - v)};
			if (name_is(line, nn, "via", "v")) {
				if (m->nvia < 8)
					m->via[m->nvia++] = whole;
			} else if (name_is(line, nn, "from", "f")) {
				m->from = whole;
			} else if (name_is(line, nn, "to", "t")) {
				m->to = whole;
			} else if (name_is(line, nn, "call-id", "i")) {
				m->callid = val;
			} else if (name_is(line, nn, "cseq", NULL)) {
				m->cseq = val;
			} else if (name_is(line, nn, "sip-etag", NULL)) {
				m->etag = val;
			}
		}
		line = eol + 2;
	}
}

/* "P123.RUN@pl" -> kind 'P', index 123, when RUN is ours. */
static int callid_index(const hdr_t *c, char *kind, unsigned *idx)
{
	if (c->n < 4)
		return -1;
	char k = c->p[0];
	if (k != 'P' && k != 'S')
		return -1;
	char *end;
	unsigned long v = strtoul(c->p + 1, &end, 10);
	if (*end != '.' || strncmp(end + 1, RUN, strlen(RUN)) != 0)
		return -1;
	*kind = k;
	*idx = (unsigned)v;
	return 0;
}

/* The to-tag of a To header line. */
static void to_tag(const hdr_t *to, char *out, size_t len)
{
	out[0] = '\0';
	const char *p = to->p, *end = to->p + to->n;
	for (const char *q = p; q + 4 < end; q++) {
		if (strncasecmp(q, ";tag=", 5) == 0) {
			q += 5;
			size_t n = 0;
			while (q + n < end && q[n] != ';' && q[n] != ' ' && q[n] != '>' && n + 1 < len)
				n++;
			memcpy(out, q, n);
			out[n] = '\0';
			return;
		}
	}
}

static void reply_200(int si, const parsed_t *m)
{
	char out[4096];
	size_t n = 0;
	n += (size_t)snprintf(out + n, sizeof out - n, "SIP/2.0 200 OK\r\n");
	for (int i = 0; i < m->nvia && n < sizeof out - 600; i++)
		n += (size_t)snprintf(out + n, sizeof out - n, "%.*s\r\n", (int)m->via[i].n, m->via[i].p);
	if (n < sizeof out - 2000)
		n += (size_t)snprintf(out + n, sizeof out - n,
				      "%.*s\r\n%.*s\r\nCall-ID: %.*s\r\nCSeq: %.*s\r\nContent-Length: 0\r\n\r\n",
				      (int)m->from.n, m->from.p, (int)m->to.n, m->to.p, (int)m->callid.n,
				      m->callid.p, (int)m->cseq.n, m->cseq.p);
	if (n < sizeof out)
		sock_send(si, out, n);
}

/* --- incoming ------------------------------------------------------------- */

static void bad_code(int code)
{
	ST.last_bad_code = code;
	if (code >= 200 && code < 700)
		ST.codes[code / 100]++;
}

static void on_response(const parsed_t *m, uint64_t now)
{
	char kind;
	unsigned idx;
	if (m->code < 200 || callid_index(&m->callid, &kind, &idx) != 0)
		return;
	unsigned cseq = (unsigned)strtoul(m->cseq.p, NULL, 10);
	if (kind == 'P') {
		if (idx >= NPR)
			return;
		pres_t *p = &PR[idx];
		if (p->state != P_OUT || cseq != p->cseq)
			return; /* late or duplicate */
		p->state = P_IDLE;
		if (m->code >= 200 && m->code < 300) {
			if (m->etag.n && m->etag.n < ETAG_MAX) {
				memcpy(p->etag, m->etag.p, m->etag.n);
				p->etag[m->etag.n] = '\0';
			}
			p->published = true;
			ST.ok++;
			samp_add(&ST.lat, now - p->t_first);
		} else {
			ST.failed++;
			bad_code(m->code);
		}
		return;
	}
	if (idx >= NSB)
		return;
	sub_t *s = &SB[idx];
	if (s->state != S_SENT || cseq != 1 || s->got200)
		return;
	if (m->code >= 200 && m->code < 300) {
		s->got200 = true;
		to_tag(&m->to, s->totag, sizeof s->totag);
		if (s->gotnotify) {
			s->state = S_DONE;
			ST.ok++;
			samp_add(&ST.lat, now - s->t_first);
		}
	} else {
		s->state = S_FAILED;
		ST.failed++;
		bad_code(m->code);
	}
}

/* "pl s=SEQ t=NS" in a NOTIFY body. */
static bool body_note(const parsed_t *m, unsigned *seq, uint64_t *t)
{
	if (!m->body || !m->bodylen)
		return false;
	const char *q = memmem(m->body, m->bodylen, "pl s=", 5);
	if (!q)
		return false;
	char *end;
	*seq = (unsigned)strtoul(q + 5, &end, 10);
	if (strncmp(end, " t=", 3) != 0)
		return false;
	*t = strtoull(end + 3, NULL, 10);
	return true;
}

static void on_notify(int si, const parsed_t *m, size_t len, uint64_t now)
{
	reply_200(si, m);
	char kind;
	unsigned idx;
	if (callid_index(&m->callid, &kind, &idx) != 0 || kind != 'S' || idx >= NSB)
		return;
	sub_t *s = &SB[idx];
	unsigned cseq = (unsigned)strtoul(m->cseq.p, NULL, 10);
	if (cseq <= s->last_notify_cseq) {
		ST.notify_rtx++;
		return;
	}
	s->last_notify_cseq = cseq;
	ST.notifies++;
	notifies_total++;
	last_notify_ns = now;
	if (ST.measuring && now >= ST.win_start && now < ST.win_end) {
		ST.notifies_window++;
		ST.notify_bytes += len;
	}
	unsigned seq;
	uint64_t t;
	if (body_note(m, &seq, &t)) {
		/* A list's parts come from many presentities, each with its own
		 * sequence: every partial NOTIFY is a new state. */
		if (O.lists) {
			if (ST.measuring && t >= ST.win_start) {
				ST.states++;
				samp_add(&ST.p2n, now - t);
			}
		} else if (seq > s->last_seq) {
			s->last_seq = seq;
			if (ST.measuring && t >= ST.win_start) {
				ST.states++;
				samp_add(&ST.p2n, now - t);
			}
		} else if (ST.measuring) {
			ST.stale++;
		}
	}
	if (s->state == S_SENT && !s->gotnotify) {
		s->gotnotify = true;
		if (s->got200) {
			s->state = S_DONE;
			ST.ok++;
			samp_add(&ST.lat, now - s->t_first);
		}
	}
}

static char rxbuf[RX_BATCH][RX_BUFSZ + 1];

static void drain_sock(int si)
{
	struct mmsghdr mm[RX_BATCH];
	struct iovec iov[RX_BATCH];
	for (int round = 0; round < 64; round++) {
		for (int i = 0; i < RX_BATCH; i++) {
			iov[i].iov_base = rxbuf[i];
			iov[i].iov_len = RX_BUFSZ;
			memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(S[si].fd, mm, RX_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		uint64_t now = now_ns();
		for (int i = 0; i < n; i++) {
			parsed_t m;
			if (parse(rxbuf[i], mm[i].msg_len, &m) != 0)
				continue;
			if (m.is_response)
				on_response(&m, now);
			else if (m.method.n == 6 && strncmp(m.method.p, "NOTIFY", 6) == 0)
				on_notify(si, &m, mm[i].msg_len, now);
		}
		if (n < RX_BATCH)
			return;
	}
}

static void poll_once(int timeout_ms)
{
	struct epoll_event ev[MAX_SOCKS + 1];
	int n = epoll_wait(epfd, ev, MAX_SOCKS + 1, timeout_ms);
	for (int i = 0; i < n; i++)
		drain_sock((int)ev[i].data.u32);
}

/* --- retransmissions ------------------------------------------------------- */

static uint64_t rto(uint32_t tries)
{
	uint64_t r = RTO0_NS << (tries > 3 ? 3 : tries);
	return r;
}

static unsigned long retransmissions;

static void sweep_pres(unsigned a, unsigned b, uint64_t now)
{
	for (unsigned i = a; i < b; i++) {
		pres_t *p = &PR[i];
		if (p->state != P_OUT)
			continue;
		if (now - p->t_first > GIVE_UP_NS) {
			p->state = P_IDLE;
			ST.failed++;
			bad_code(408);
			continue;
		}
		if (now - p->t_last > rto(p->tries)) {
			p->tries++;
			p->t_last = now;
			retransmissions++;
			send_publish(i, true);
		}
	}
}

static void sweep_subs(unsigned a, unsigned b, uint64_t now)
{
	for (unsigned j = a; j < b; j++) {
		sub_t *s = &SB[j];
		if (s->state != S_SENT)
			continue;
		if (now - s->t_first > GIVE_UP_NS) {
			s->state = S_FAILED;
			ST.failed++;
			bad_code(408);
			continue;
		}
		if (!s->got200 && now - s->t_last > rto(s->tries)) {
			s->tries++;
			s->t_last = now;
			retransmissions++;
			send_subscribe(j);
		}
	}
}

static void check_deadline(void)
{
	if (now_ns() > DEADLINE) {
		printf("phase=deadline error=overall_deadline_reached\n");
		fflush(stdout);
		exit(1);
	}
}

static void phase_begin(void)
{
	samples_t lat = ST.lat, p2n = ST.p2n;
	memset(&ST, 0, sizeof ST);
	ST.lat = lat;
	ST.p2n = p2n;
	samp_reset(&ST.lat);
	samp_reset(&ST.p2n);
	retransmissions = 0;
}

static void print_codes(char *out, size_t len)
{
	size_t n = 0;
	out[0] = '\0';
	for (int c = 3; c <= 6; c++) {
		if (ST.codes[c])
			n += (size_t)snprintf(out + n, len - n, " %dxx=%lu", c, ST.codes[c]);
	}
	if (ST.last_bad_code)
		snprintf(out + n, len - n, " last_error=%d", ST.last_bad_code);
}

/* --- phases ------------------------------------------------------------------ */

/* One operation on each presentity of [a, b), window outstanding. */
static void run_publish(const char *label, unsigned a, unsigned b, int op, bool print)
{
	phase_begin();
	unsigned next = a, count = b - a, skipped = 0;
	/* A modify or refresh needs an ETag: presentities whose earlier
	 * PUBLISH failed are left out (and reported). */
	if (op != OP_INITIAL) {
		for (unsigned i = a; i < b; i++)
			skipped += !PR[i].published;
		count -= skipped;
	}
	uint64_t t0 = now_ns(), last_sweep = t0;
	unsigned long outstanding = 0;
	while (ST.ok + ST.failed < count) {
		check_deadline();
		outstanding = ST.started - ST.ok - ST.failed;
		while (next < b && outstanding < O.window) {
			if (op != OP_INITIAL && !PR[next].published) {
				next++;
				continue;
			}
			start_publish(next++, op);
			outstanding++;
		}
		poll_once(1);
		uint64_t now = now_ns();
		if (now - last_sweep > 50000000ULL) {
			sweep_pres(a, next, now);
			last_sweep = now;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	char lat[128], codes[128];
	samp_str(&ST.lat, lat, sizeof lat);
	print_codes(codes, sizeof codes);
	if (print) {
		printf("phase=%s ok=%lu failed=%lu skipped=%u secs=%.2f rate=%.0f %s rtx=%lu%s\n", label,
		       ST.ok, ST.failed, skipped, secs, ST.ok / secs, lat, retransmissions, codes);
		fflush(stdout);
	} else {
		note("%s: %lu ok, %lu failed in %.2f s (%.0f/s)%s", label, ST.ok, ST.failed, secs,
		     ST.ok / secs, codes);
	}
}

/* Subscriptions [a, b) */
static void run_subscribe(const char *label, unsigned a, unsigned b, bool print)
{
	phase_begin();
	unsigned next = a, count = b - a;
	uint64_t t0 = now_ns(), last_sweep = t0;
	while (ST.ok + ST.failed < count) {
		check_deadline();
		unsigned long outstanding = ST.started - ST.ok - ST.failed;
		while (next < b && outstanding < O.window) {
			start_subscribe(next++);
			outstanding++;
		}
		poll_once(1);
		uint64_t now = now_ns();
		if (now - last_sweep > 100000000ULL) {
			sweep_subs(a, next, now);
			last_sweep = now;
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	char lat[128], codes[128];
	samp_str(&ST.lat, lat, sizeof lat);
	print_codes(codes, sizeof codes);
	if (print) {
		printf("phase=%s ok=%lu failed=%lu secs=%.2f rate=%.0f %s rtx=%lu notifies=%lu%s\n", label,
		       ST.ok, ST.failed, secs, ST.ok / secs, lat, retransmissions, ST.notifies, codes);
		fflush(stdout);
	} else {
		note("%s: %lu ok, %lu failed in %.2f s (%.0f/s)%s", label, ST.ok, ST.failed, secs,
		     ST.ok / secs, codes);
	}
}

/* Answers NOTIFYs for a while (and retransmits what is outstanding). */
static void pump_for(double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	while (now_ns() < end) {
		poll_once(10);
		sweep_pres(0, NPR, now_ns());
	}
}

static void alloc_subs(unsigned npres, unsigned per)
{
	NPR = npres;
	PR = calloc(NPR, sizeof *PR);
	NSB = npres * per;
	SB = calloc(NSB ? NSB : 1, sizeof *SB);
	if (!PR || !SB)
		die("out of memory");
	/* Watcher j watches presentity j % P: consecutive subscriptions
	 * spread over presentities and sockets. */
	for (unsigned j = 0; j < NSB; j++) {
		SB[j].pres = j % npres;
		SB[j].sock = (uint8_t)(1 + j % O.nsocks);
	}
}

static void setup(void)
{
	alloc_subs(O.presentities, O.watchers);
	run_publish("setup-publish", 0, NPR, OP_INITIAL, false);
}

static void mode_publish(void)
{
	alloc_subs(O.presentities, 0);
	run_publish("publish-initial", 0, NPR, OP_INITIAL, true);
	for (unsigned r = 0; r < O.modify_rounds; r++)
		run_publish("publish-modify", 0, NPR, OP_MODIFY, true);
	for (unsigned r = 0; r < O.refresh_rounds; r++)
		run_publish("publish-refresh", 0, NPR, OP_REFRESH, true);
}

static void mode_subscribe(void)
{
	setup();
	run_subscribe("subscribe", 0, NSB, true);
}

static void fanout_at(double rate)
{
	phase_begin();
	uint64_t t0 = now_ns();
	uint64_t dur = (uint64_t)(O.duration * 1e9);
	ST.measuring = true;
	ST.win_start = t0;
	ST.win_end = t0 + dur;
	unsigned rr = 0;
	unsigned long sent = 0, busy = 0;
	uint64_t last_sweep = t0;
	for (;;) {
		check_deadline();
		uint64_t now = now_ns();
		if (now >= ST.win_end)
			break;
		double due = rate * (double)(now - t0) / 1e9;
		while ((double)sent < due) {
			unsigned tried = 0;
			while (tried < NPR && (PR[rr].state != P_IDLE || !PR[rr].published)) {
				rr = (rr + 1) % NPR;
				tried++;
			}
			if (tried == NPR) {
				busy++;
				break; /* every presentity has a PUBLISH outstanding */
			}
			start_publish(rr, OP_MODIFY);
			rr = (rr + 1) % NPR;
			sent++;
		}
		poll_once(1);
		now = now_ns();
		if (now - last_sweep > 50000000ULL) {
			sweep_pres(0, NPR, now);
			last_sweep = now;
		}
	}
	/* Drain: outstanding PUBLISHes and the NOTIFYs they cause, at most 3 s. */
	uint64_t drain_end = now_ns() + 3000000000ULL;
	for (;;) {
		uint64_t now = now_ns();
		bool idle = ST.ok + ST.failed >= ST.started && now - last_notify_ns > 300000000ULL;
		if (idle || now > drain_end)
			break;
		poll_once(5);
		if (now - last_sweep > 50000000ULL) {
			sweep_pres(0, NPR, now);
			last_sweep = now;
		}
	}
	ST.measuring = false;
	double secs = (double)dur / 1e9;
	char lat[128], p2n[128], codes[128];
	if (ST.lat.n) {
		qsort(ST.lat.v, ST.lat.n, sizeof *ST.lat.v, cmp_u32);
		snprintf(lat, sizeof lat, "pub_p50_ms=%.2f pub_p99_ms=%.2f", ST.lat.v[ST.lat.n / 2] / 1000.0,
			 ST.lat.v[(size_t)((double)ST.lat.n * 0.99)] / 1000.0);
	} else {
		snprintf(lat, sizeof lat, "pub_p50_ms=n/a pub_p99_ms=n/a");
	}
	samp_str(&ST.p2n, p2n, sizeof p2n);
	print_codes(codes, sizeof codes);
	unsigned long expected = ST.ok * O.watchers;
	if (O.lists) {
		printf("phase=rls lists=%u presentities=%u offered_pub_rate=%.0f pub_ok=%lu pub_failed=%lu "
		       "pub_rate=%.0f notifies=%lu notify_rate=%.0f bytes_per_notify=%.0f %s %s secs=%.2f "
		       "busy=%lu rtx=%lu%s\n",
		       NSB, NPR, rate, ST.ok, ST.failed, ST.ok / secs, ST.notifies, ST.notifies_window / secs,
		       ST.notifies_window ? (double)ST.notify_bytes / (double)ST.notifies_window : 0.0, p2n,
		       lat, secs, busy, retransmissions, codes);
		fflush(stdout);
		return;
	}
	printf("phase=fanout subs=%u presentities=%u watchers=%u offered_pub_rate=%.0f pub_ok=%lu "
	       "pub_failed=%lu pub_rate=%.0f notifies=%lu notify_rate=%.0f states=%lu expected_states=%lu "
	       "stale=%lu notify_rtx=%lu %s %s secs=%.2f busy=%lu rtx=%lu%s\n",
	       NSB, NPR, O.watchers, rate, ST.ok, ST.failed, ST.ok / secs, ST.notifies,
	       ST.notifies_window / secs, ST.states, expected, ST.stale, ST.notify_rtx, p2n, lat, secs, busy,
	       retransmissions, codes);
	fflush(stdout);
}

static void mode_fanout(void)
{
	setup();
	run_subscribe("setup-subscribe", 0, NSB, false);
	pump_for(0.5);
	for (int i = 0; i < O.nrates; i++)
		fanout_at(O.rates[i]);
}

static long rss_kib(const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", O.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t fl = strlen(field);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static void mode_memory(void)
{
	if (O.pid <= 0)
		die("memory needs --pid");
	setup();
	pump_for(1.0);
	long before = rss_kib("VmRSS");
	note("VmRSS before: %ld KiB", before);
	run_subscribe("memory-subscribe", 0, NSB, false);
	unsigned long ok = ST.ok, failed = ST.failed;
	pump_for(0.5);
	long after = rss_kib("VmRSS");
	note("VmRSS after %lu subscriptions: %ld KiB; holding %.0f s", ok, after, O.hold);
	pump_for(O.hold);
	long held = rss_kib("VmRSS"), hwm = rss_kib("VmHWM");
	double per_now = ok ? (double)(after - before) * 1024.0 / (double)ok : 0;
	double per_held = ok ? (double)(held - before) * 1024.0 / (double)ok : 0;
	printf("phase=memory subs=%lu failed=%lu rss_before_kib=%ld rss_after_kib=%ld rss_held_kib=%ld "
	       "hwm_kib=%ld hold_s=%.0f per_sub_after_b=%.0f per_sub_held_b=%.0f\n",
	       ok, failed, before, after, held, hwm, O.hold, per_now, per_held);
	fflush(stdout);
}

static void mode_rls(void)
{
	if (!O.lists)
		die("rls needs --lists");
	alloc_subs(O.presentities, 0);
	run_publish("setup-publish", 0, NPR, OP_INITIAL, false);
	NSB = O.lists;
	free(SB);
	SB = calloc(NSB, sizeof *SB);
	if (!SB)
		die("out of memory");
	for (unsigned j = 0; j < NSB; j++)
		SB[j].sock = (uint8_t)(1 + j % O.nsocks);
	pump_for(1.0);
	long before = O.pid > 0 ? rss_kib("VmRSS") : -1;
	run_subscribe("rls-subscribe", 0, NSB, true);
	pump_for(2.0);
	long after = O.pid > 0 ? rss_kib("VmRSS") : -1;
	printf("phase=rls-memory lists=%u rss_before_kib=%ld rss_after_kib=%ld\n", NSB, before, after);
	fflush(stdout);
	for (int i = 0; i < O.nrates; i++)
		fanout_at(O.rates[i]);
	if (O.pid > 0) {
		printf("phase=rls-end rss_kib=%ld hwm_kib=%ld\n", rss_kib("VmRSS"), rss_kib("VmHWM"));
		fflush(stdout);
	}
}

/* OPTIONS every 100 ms until something answers (the server is ready). */
static void mode_ping(void)
{
	for (unsigned i = 0;; i++) {
		check_deadline();
		char msg[512];
		int n = snprintf(msg, sizeof msg,
				 "OPTIONS sip:%s SIP/2.0\r\n"
				 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK%s.O%u;rport\r\n"
				 "Max-Forwards: 70\r\n"
				 "From: <sip:%sping@%s>;tag=%s\r\n"
				 "To: <sip:%s>\r\n"
				 "Call-ID: O%u.%s@pl\r\n"
				 "CSeq: 1 OPTIONS\r\n"
				 "Content-Length: 0\r\n\r\n",
				 O.domain, S[0].port, RUN, i, O.prefix, O.domain, RUN, O.domain, i, RUN);
		sock_send(0, msg, (size_t)n);
		uint64_t end = now_ns() + 100000000ULL;
		while (now_ns() < end) {
			struct epoll_event ev[MAX_SOCKS + 1];
			int k = epoll_wait(epfd, ev, MAX_SOCKS + 1, 20);
			for (int e = 0; e < k; e++) {
				if (ev[e].data.u32 == 0) {
					char b[4096];
					ssize_t r = recv(S[0].fd, b, sizeof b - 1, MSG_DONTWAIT);
					if (r > 8 && strncmp(b, "SIP/2.0 ", 8) == 0)
						return;
				}
			}
		}
	}
}

/* --- main ------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: presence_load publish|subscribe|fanout|memory|rls|ping --server 127.0.0.1:PORT "
			"[--presentities N] [--watchers N] [--window N] [--sockets N] [--rate R[,R...]] "
			"[--duration S] [--lists L] [--pid PID] [--hold S] [--modify-rounds K] [--refresh-rounds K] "
			"[--prefix S] [--domain D] [--expires S] [--deadline S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	O.mode = argv[1];
	const char *server = NULL;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--server"))
			server = v;
		else if (!strcmp(a, "--presentities"))
			O.presentities = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--lists"))
			O.lists = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--watchers"))
			O.watchers = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--window"))
			O.window = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--sockets"))
			O.nsocks = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--modify-rounds"))
			O.modify_rounds = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--refresh-rounds"))
			O.refresh_rounds = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--expires"))
			O.expires = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--duration"))
			O.duration = atof(v);
		else if (!strcmp(a, "--hold"))
			O.hold = atof(v);
		else if (!strcmp(a, "--deadline"))
			O.deadline = atof(v);
		else if (!strcmp(a, "--pid"))
			O.pid = atoi(v);
		else if (!strcmp(a, "--prefix"))
			O.prefix = v;
		else if (!strcmp(a, "--domain"))
			O.domain = v;
		else if (!strcmp(a, "--rate")) {
			char *copy = strdup(v), *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t && O.nrates < 16; t = strtok_r(NULL, ",", &save))
				O.rates[O.nrates++] = atof(t);
		} else
			usage();
	}
	if (!server)
		usage();
	char host[64];
	unsigned port = 0;
	if (sscanf(server, "%63[^:]:%u", host, &port) != 2 || port == 0 || port > 65535)
		die("bad --server %s", server);
	O.server.sin_family = AF_INET;
	O.server.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &O.server.sin_addr) != 1)
		die("bad address %s (numeric IPv4 only)", host);
	if (O.nsocks < 1 || O.nsocks > MAX_SOCKS)
		die("--sockets must be 1..%d", MAX_SOCKS);
	if (!O.window)
		O.window = 1;
	if (!O.nrates)
		O.rates[O.nrates++] = 1000;

	T0 = now_ns();
	DEADLINE = T0 + (uint64_t)(O.deadline * 1e9);
	srand((unsigned)(T0 ^ (uint64_t)getpid()));
	snprintf(RUN, sizeof RUN, "%08x", (unsigned)rand() ^ (unsigned)(T0 >> 20));
	open_socks();

	if (!strcmp(O.mode, "publish"))
		mode_publish();
	else if (!strcmp(O.mode, "subscribe"))
		mode_subscribe();
	else if (!strcmp(O.mode, "fanout"))
		mode_fanout();
	else if (!strcmp(O.mode, "memory"))
		mode_memory();
	else if (!strcmp(O.mode, "ping"))
		mode_ping();
	else if (!strcmp(O.mode, "rls"))
		mode_rls();
	else
		usage();
	if (tx_eagain || tx_err)
		note("send: %lu EAGAIN, %lu errors", tx_eagain, tx_err);
	return 0;
}
