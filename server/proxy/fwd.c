/* Request and response rewriting for the proxy (see fwd.h; RFC 3261
 * §16.4, §16.6, §16.7, §9.1). */
#include "server/proxy/fwd.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One header: its name and value, and the raw bytes of the whole header
 * (continuation lines included, final line end excluded). */
typedef struct hline {
	const char *raw;
	size_t rawlen;
	const char *name;
	size_t nlen;
	const char *val;
	size_t vlen;
} hline_t;

static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl;
}

/* Length of a line without its CR. */
static size_t trim_cr(const char *start, const char *nl)
{
	size_t n = (size_t)(nl - start);
	if (n && start[n - 1] == '\r')
		n--;
	return n;
}

/* Reads the next header at *p.  Returns 1 with h filled, 0 at the blank
 * line that ends the header block (*p then points at the body), -1 when
 * the block does not end. */
static int next_header(const char **p, const char *end, hline_t *h)
{
	const char *s = *p;
	const char *nl = line_end(s, end);
	if (!nl)
		return -1;
	size_t n = trim_cr(s, nl);
	if (n == 0) {
		*p = nl + 1;
		return 0;
	}
	/* Continuation lines (RFC 3261 §7.3.1) belong to this header. */
	while (nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) {
		const char *nl2 = line_end(nl + 1, end);
		if (!nl2)
			return -1;
		nl = nl2;
	}
	h->raw = s;
	h->rawlen = trim_cr(s, nl);
	const char *colon = memchr(s, ':', h->rawlen);
	if (!colon)
		return -1;
	h->name = s;
	h->nlen = (size_t)(colon - s);
	while (h->nlen && (s[h->nlen - 1] == ' ' || s[h->nlen - 1] == '\t'))
		h->nlen--;
	h->val = colon + 1;
	h->vlen = h->rawlen - (size_t)(h->val - s);
	while (h->vlen && (*h->val == ' ' || *h->val == '\t')) {
		h->val++;
		h->vlen--;
	}
	*p = nl + 1;
	return 1;
}

static bool hname_is(const hline_t *h, const char *full, const char *compact)
{
	return (strlen(full) == h->nlen && strncasecmp(h->name, full, h->nlen) == 0) ||
	       (compact && strlen(compact) == h->nlen && strncasecmp(h->name, compact, h->nlen) == 0);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int fwd_split_values(const char *value, size_t len,
		     int (*fn)(void *arg, const char *v, size_t vlen), void *arg)
{
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		bool quoted = false;
		int angle = 0;
		for (; i < len; i++) {
			char c = value[i];
			if (quoted) {
				if (c == '\\' && i + 1 < len)
					i++;
				else if (c == '"')
					quoted = false;
			} else if (c == '"') {
				quoted = true;
			} else if (c == '<') {
				angle++;
			} else if (c == '>' && angle) {
				angle--;
			} else if (c == ',' && !angle) {
				break;
			}
		}
		size_t a = start, b = i;
		while (a < b && is_space(value[a]))
			a++;
		while (b > a && is_space(value[b - 1]))
			b--;
		if (b > a) {
			int rc = fn(arg, value + a, b - a);
			if (rc)
				return rc;
		}
		i++; /* past the comma */
	}
	return 0;
}

static int count_cb(void *arg, const char *v, size_t vlen)
{
	(void)v;
	(void)vlen;
	(*(unsigned *)arg)++;
	return 0;
}

/* --- requests ----------------------------------------------------------- */

struct route_pass {
	unsigned index;       /* values seen so far */
	unsigned pop, total;  /* leading values to skip; how many there are */
	bool skip_last;
	buf_t *out;
	const char *last;     /* first pass: the last value */
	size_t lastlen;
};

static int last_cb(void *arg, const char *v, size_t vlen)
{
	struct route_pass *r = arg;
	r->last = v;
	r->lastlen = vlen;
	r->total++;
	return 0;
}

static int emit_route_cb(void *arg, const char *v, size_t vlen)
{
	struct route_pass *r = arg;
	unsigned i = r->index++;
	if (i < r->pop || (r->skip_last && i + 1 == r->total))
		return 0;
	buf_puts(r->out, "Route: ");
	buf_append(r->out, v, vlen);
	buf_puts(r->out, "\r\n");
	return 0;
}

int fwd_request(const char *msg, size_t len, const fwd_req_t *o, buf_t *out)
{
	const char *end = msg + len, *p = msg;
	const char *nl = line_end(p, end);
	if (!nl || !o->via)
		return -EINVAL;
	size_t rl = trim_cr(p, nl);
	const char *sp1 = memchr(p, ' ', rl);
	if (!sp1 || (rl >= 4 && strncmp(p, "SIP/", 4) == 0))
		return -EINVAL;
	const char *uri = sp1 + 1;
	const char *sp2 = memchr(uri, ' ', rl - (size_t)(uri - p));
	if (!sp2)
		return -EINVAL;
	const char *hdrs = nl + 1;

	/* First pass: how many Route values, and the last one (strict
	 * routing, §16.4). */
	struct route_pass rp = {.pop = o->pop_routes, .out = out};
	hline_t h;
	int rc;
	const char *q = hdrs;
	while ((rc = next_header(&q, end, &h)) == 1) {
		if (hname_is(&h, "route", NULL))
			fwd_split_values(h.val, h.vlen, last_cb, &rp);
	}
	if (rc < 0)
		return -EINVAL;
	const char *body = q;

	/* Request line. */
	buf_append(out, p, (size_t)(sp1 - p));
	buf_puts(out, " ");
	if (o->ruri) {
		buf_puts(out, o->ruri);
	} else if (o->strict_ruri_pop && rp.total > rp.pop && rp.last) {
		/* The last Route value's URI, without the angle brackets. */
		const char *a = memchr(rp.last, '<', rp.lastlen);
		const char *b = a ? memchr(a, '>', rp.lastlen - (size_t)(a - rp.last)) : NULL;
		if (a && b)
			buf_append(out, a + 1, (size_t)(b - a - 1));
		else
			buf_append(out, rp.last, rp.lastlen);
		rp.skip_last = true;
	} else {
		buf_append(out, uri, (size_t)(sp2 - uri));
	}
	buf_puts(out, " SIP/2.0\r\n");
	buf_printf(out, "Via: %s\r\n", o->via);
	if (o->record_route)
		buf_printf(out, "Record-Route: %s\r\n", o->record_route);
	if (o->routes_first && *o->routes_first)
		buf_printf(out, "Route: %s\r\n", o->routes_first);

	bool have_mf = false;
	rp.index = 0;
	q = hdrs;
	while (next_header(&q, end, &h) == 1) {
		if (hname_is(&h, "max-forwards", NULL)) {
			char tmp[16];
			size_t n = h.vlen < sizeof tmp - 1 ? h.vlen : sizeof tmp - 1;
			memcpy(tmp, h.val, n);
			tmp[n] = '\0';
			long mf = strtol(tmp, NULL, 10);
			if (mf > 70 * 4)
				mf = 255;
			buf_printf(out, "Max-Forwards: %ld\r\n", mf > 0 ? mf - 1 : 0);
			have_mf = true;
		} else if (hname_is(&h, "route", NULL)) {
			fwd_split_values(h.val, h.vlen, emit_route_cb, &rp);
		} else if ((o->drop_proxy_auth && hname_is(&h, "proxy-authorization", NULL)) ||
			   (o->drop_identity && hname_is(&h, "p-asserted-identity", NULL))) {
			continue;
		} else {
			buf_append(out, h.raw, h.rawlen);
			buf_puts(out, "\r\n");
		}
	}
	if (!have_mf)
		buf_puts(out, "Max-Forwards: 70\r\n");
	if (o->extra)
		buf_puts(out, o->extra);
	buf_puts(out, "\r\n");
	buf_append(out, body, (size_t)(end - body));
	return out->err;
}

/* --- responses ---------------------------------------------------------- */

int fwd_status(const char *msg, size_t len)
{
	if (len < 12 || strncmp(msg, "SIP/2.0 ", 8) != 0)
		return -EINVAL;
	if (!isdigit((unsigned char)msg[8]) || !isdigit((unsigned char)msg[9]) ||
	    !isdigit((unsigned char)msg[10]))
		return -EINVAL;
	return (msg[8] - '0') * 100 + (msg[9] - '0') * 10 + (msg[10] - '0');
}

struct via_pass {
	bool first_done;
	buf_t *out;
	unsigned emitted;
};

static int via_rest_cb(void *arg, const char *v, size_t vlen)
{
	struct via_pass *vp = arg;
	if (!vp->first_done) {
		vp->first_done = true; /* ours: dropped */
		return 0;
	}
	buf_puts(vp->out, "Via: ");
	buf_append(vp->out, v, vlen);
	buf_puts(vp->out, "\r\n");
	vp->emitted++;
	return 0;
}

int fwd_response(const char *msg, size_t len, int new_code, const char *reason, buf_t *out)
{
	if (fwd_status(msg, len) < 0)
		return -EINVAL;
	const char *end = msg + len;
	const char *nl = line_end(msg, end);
	if (!nl)
		return -EINVAL;
	/* At least two Via values: ours and the one we relay to. */
	unsigned nvia = 0;
	hline_t h;
	int rc;
	const char *q = nl + 1;
	while ((rc = next_header(&q, end, &h)) == 1) {
		if (hname_is(&h, "via", "v"))
			fwd_split_values(h.val, h.vlen, count_cb, &nvia);
	}
	if (rc < 0 || nvia < 2)
		return -EINVAL;
	const char *body = q;
	if (new_code)
		buf_printf(out, "SIP/2.0 %d %s\r\n", new_code, reason ? reason : "");
	else
		buf_append(out, msg, (size_t)(nl + 1 - msg));
	struct via_pass vp = {.out = out};
	q = nl + 1;
	while (next_header(&q, end, &h) == 1) {
		if (hname_is(&h, "via", "v") && !vp.first_done) {
			fwd_split_values(h.val, h.vlen, via_rest_cb, &vp);
			continue;
		}
		buf_append(out, h.raw, h.rawlen);
		buf_puts(out, "\r\n");
	}
	buf_puts(out, "\r\n");
	buf_append(out, body, (size_t)(end - body));
	return out->err;
}

/* --- CANCEL ------------------------------------------------------------- */

static int first_cb(void *arg, const char *v, size_t vlen)
{
	buf_t *out = arg;
	buf_puts(out, "Via: ");
	buf_append(out, v, vlen);
	buf_puts(out, "\r\n");
	return 1; /* only the first value */
}

int fwd_cancel(const char *invite, size_t len, buf_t *out)
{
	const char *end = invite + len;
	const char *nl = line_end(invite, end);
	if (!nl)
		return -EINVAL;
	size_t rl = trim_cr(invite, nl);
	if (rl < 7 || strncmp(invite, "INVITE ", 7) != 0)
		return -EINVAL;
	const char *uri = invite + 7;
	const char *sp = memchr(uri, ' ', rl - 7);
	if (!sp)
		return -EINVAL;
	buf_puts(out, "CANCEL ");
	buf_append(out, uri, (size_t)(sp - uri));
	buf_puts(out, " SIP/2.0\r\n");
	bool via_done = false, have_cseq = false;
	hline_t h;
	int rc;
	const char *q = nl + 1;
	buf_t rest;
	buf_init(&rest, 0);
	while ((rc = next_header(&q, end, &h)) == 1) {
		if (hname_is(&h, "via", "v")) {
			if (!via_done)
				fwd_split_values(h.val, h.vlen, first_cb, out);
			via_done = true;
		} else if (hname_is(&h, "route", NULL) || hname_is(&h, "from", "f") ||
			   hname_is(&h, "to", "t") || hname_is(&h, "call-id", "i")) {
			buf_append(&rest, h.raw, h.rawlen);
			buf_puts(&rest, "\r\n");
		} else if (hname_is(&h, "cseq", NULL) && !have_cseq) {
			size_t n = 0;
			while (n < h.vlen && isdigit((unsigned char)h.val[n]))
				n++;
			if (!n)
				break;
			buf_puts(&rest, "CSeq: ");
			buf_append(&rest, h.val, n);
			buf_puts(&rest, " CANCEL\r\n");
			have_cseq = true;
		}
	}
	if (rc < 0 || !via_done || !have_cseq || rest.err) {
		buf_free(&rest);
		return rest.err ? rest.err : -EINVAL;
	}
	buf_puts(out, "Max-Forwards: 70\r\n");
	buf_append(out, rest.data, rest.len);
	buf_puts(out, "Content-Length: 0\r\n\r\n");
	buf_free(&rest);
	return out->err;
}

/* --- best response ------------------------------------------------------ */

static bool retry_info(int code)
{
	return code == 401 || code == 407 || code == 415 || code == 420 || code == 484;
}

int fwd_best(const int *codes, size_t n)
{
	int best = -1;
	for (size_t i = 0; i < n; i++) {
		int c = codes[i];
		if (c < 300 || c > 699)
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		int b = codes[best];
		int cc = c / 100, bc = b / 100;
		/* A 6xx wins over everything (§16.7 step 6). */
		if ((cc == 6) != (bc == 6)) {
			if (cc == 6)
				best = (int)i;
			continue;
		}
		if (cc != bc) {
			if (cc < bc)
				best = (int)i;
			continue;
		}
		if (cc == 4 && retry_info(c) != retry_info(b)) {
			if (retry_info(c))
				best = (int)i;
			continue;
		}
		if (c < b)
			best = (int)i;
	}
	return best;
}

int fwd_upstream_code(int code) { return code == 503 ? 500 : code; }
