/* SIP message helpers over libosip2 (RFC 3261 §7, §8.2, §18, RFC 3581). */
#include "server/sip/sipmsg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "server/base/log.h"

int sipmsg_global_init(void)
{
	return parser_init() == 0 ? 0 : -ENOMEM;
}

/* --- parsing ------------------------------------------------------------ */

/* Scans the header block once: counts header lines (without folding
 * continuations) and finds where the body starts. */
static int scan_headers(const char *data, size_t len, size_t *nheaders, size_t *body_off)
{
	size_t n = 0;
	const char *p = data, *end = data + len;
	/* memchr, not a byte loop: this runs over every message. */
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		/* An empty line ends the header block. */
		if (p < end && (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))) {
			*body_off = (size_t)(p - data) + (*p == '\n' ? 1 : 2);
			*nheaders = n;
			return 0;
		}
		if (p < end && *p != ' ' && *p != '\t')
			n++;
	}
	*nheaders = n;
	*body_off = len;
	return 0;
}

/* Whether data[0..len) holds a control byte other than HT (CR and LF
 * included: callers pass one line without its end). */
static bool has_ctl(const char *data, size_t len)
{
	unsigned char acc = 0;
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)data[k];
		acc |= (unsigned char)((c < 0x20 && c != '\t') | (c == 0x7f));
	}
	return acc != 0;
}

/* Whether "%00" occurs in data[0..len). */
static bool has_escaped_nul(const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	while ((p = memchr(p, '%', (size_t)(end - p))) != NULL) {
		if (end - p >= 3 && p[1] == '0' && p[2] == '0')
			return true;
		p++;
	}
	return false;
}

/* The value of the first header named name (or its compact form) in the
 * header block, with folded lines joined by one space and surrounding
 * white space removed; NULL when absent or out of memory. */
static char *raw_header_value(const char *data, size_t hdr_len, const char *name, char compact)
{
	size_t nlen = strlen(name);
	size_t i = 0;
	while (i < hdr_len && data[i] != '\n')
		i++; /* skip the start line */
	i++;
	while (i < hdr_len) {
		size_t start = i;
		while (i < hdr_len && data[i] != '\n')
			i++;
		size_t end = i; /* exclusive; data[end] is '\n' or the end */
		i++;
		const char *line = data + start;
		size_t n = end - start;
		size_t k = 0;
		bool match = false;
		if (n > nlen && strncasecmp(line, name, nlen) == 0)
			k = nlen, match = true;
		else if (n > 1 && (line[0] == compact || line[0] == compact - 32) &&
			 (line[1] == ':' || line[1] == ' ' || line[1] == '\t'))
			k = 1, match = true;
		if (!match)
			continue;
		while (k < n && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k >= n || line[k] != ':')
			continue;
		k++;
		buf_t b;
		buf_init(&b, 0);
		buf_append(&b, line + k, n - k);
		/* Folded continuation lines (RFC 3261 §7.3.1). */
		while (i < hdr_len && (data[i] == ' ' || data[i] == '\t')) {
			size_t cs = i;
			while (i < hdr_len && data[i] != '\n')
				i++;
			buf_puts(&b, " ");
			buf_append(&b, data + cs, i - cs);
			i++;
		}
		if (b.err) {
			buf_free(&b);
			return NULL;
		}
		char *v = buf_steal(&b, NULL);
		if (!v)
			return strdup("");
		/* Trim white space and the CR of CRLF line ends. */
		char *p = v;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t vl = strlen(p);
		while (vl && (p[vl - 1] == ' ' || p[vl - 1] == '\t' || p[vl - 1] == '\r'))
			p[--vl] = '\0';
		memmove(v, p, vl + 1);
		/* Inner CRs of folded lines become spaces. */
		for (char *c = v; *c; c++)
			if (*c == '\r')
				*c = ' ';
		return v;
	}
	return NULL;
}

static bool all_digits(const char *s, size_t max_len)
{
	if (!s || !*s)
		return false;
	size_t n = 0;
	for (; *s; s++, n++) {
		if (!isdigit((unsigned char)*s) || n >= max_len)
			return false;
	}
	return true;
}

/* A SIP URI's host must be a name, an IPv4 address or a whole IPv6
 * reference (RFC 3261 §25.1, RFC 5118 §4): libosip2 strips the brackets,
 * so a host with a colon must be an IPv6 address, and a stray bracket
 * means the reference was not closed.  The port must be a number. */
static bool uri_host_ok(const osip_uri_t *u)
{
	if (!u || !u->scheme || (strcasecmp(u->scheme, "sip") != 0 && strcasecmp(u->scheme, "sips") != 0))
		return true; /* tel:, other schemes: not ours to judge here */
	if (!u->host || !*u->host || strchr(u->host, '[') || strchr(u->host, ']'))
		return false;
	if (strchr(u->host, ':')) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, u->host, &a6) != 1)
			return false;
	}
	if (u->port && *u->port && (!all_digits(u->port, 5) || strtoul(u->port, NULL, 10) > 65535))
		return false;
	return true;
}

static bool scheme_ok(const osip_uri_t *u)
{
	return u && u->scheme &&
	       (strcasecmp(u->scheme, "sip") == 0 || strcasecmp(u->scheme, "sips") == 0 ||
		strcasecmp(u->scheme, "tel") == 0);
}

/* --- the raw header index ----------------------------------------------- */

static sip_hdr_id_t hdr_id(const char *name, size_t n)
{
	if (n == 1) {
		switch (name[0] | 0x20) {
		case 'v': return SIPH_VIA;
		case 'f': return SIPH_FROM;
		case 't': return SIPH_TO;
		case 'i': return SIPH_CALL_ID;
		case 'c': return SIPH_CONTENT_TYPE;
		case 'l': return SIPH_CONTENT_LENGTH;
		default: return SIPH_OTHER;
		}
	}
#define NAME(s) s, sizeof(s) - 1
	static const struct { const char *name; size_t len; sip_hdr_id_t id; } names[] = {
		{NAME("via"), SIPH_VIA}, {NAME("from"), SIPH_FROM}, {NAME("to"), SIPH_TO},
		{NAME("call-id"), SIPH_CALL_ID}, {NAME("cseq"), SIPH_CSEQ},
		{NAME("content-type"), SIPH_CONTENT_TYPE}, {NAME("content-length"), SIPH_CONTENT_LENGTH},
		{NAME("max-forwards"), SIPH_MAX_FORWARDS}, {NAME("route"), SIPH_ROUTE},
		{NAME("proxy-authorization"), SIPH_PROXY_AUTHORIZATION},
	};
#undef NAME
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].len == n && strncasecmp(name, names[i].name, n) == 0)
			return names[i].id;
	}
	return SIPH_OTHER;
}

/* Room after the header bytes for the rewritten top Via: ";received="
 * plus an IPv6 address and "=65535" for rport. */
#define TOP_VIA_EXTRA 80

/* Indexes the header lines of data[0..body_off) into one allocation (the
 * index, room for the top Via, then a copy of the header bytes with each value
 * NUL-terminated).  Leaves msg->hdrs NULL -- the old paths --
 * for folded lines, control bytes or a line without a colon. */
static void build_raw_index(sipmsg_t *msg, const char *data, size_t body_off)
{
	const char *nl = memchr(data, '\n', body_off);
	if (!nl)
		return;
	const char *start = nl + 1, *end = data + body_off;
	size_t n = 0;
	for (const char *q = start; q < end;) {
		if (*q == ' ' || *q == '\t')
			return; /* folding */
		const char *e = memchr(q, '\n', (size_t)(end - q));
		if (!e)
			return;
		size_t ll = (size_t)(e - q);
		if (ll && q[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;
		if (has_ctl(q, ll))
			return;
		n++;
		q = e + 1;
	}
	size_t bytes = (size_t)(end - start);
	char *arena = malloc(n * sizeof(sip_raw_hdr_t) + bytes + TOP_VIA_EXTRA + bytes + 1);
	if (!arena)
		return;
	sip_raw_hdr_t *hdrs = (sip_raw_hdr_t *)arena;
	char *copy = arena + n * sizeof(sip_raw_hdr_t) + bytes + TOP_VIA_EXTRA;
	memcpy(copy, start, bytes);
	copy[bytes] = '\0';
	char *q = copy;
	for (size_t i = 0; i < n; i++) {
		char *e = strchr(q, '\n'); /* present: counted above */
		char *le = e;
		if (le > q && le[-1] == '\r')
			le--;
		char *colon = memchr(q, ':', (size_t)(le - q));
		if (!colon) {
			free(arena);
			return;
		}
		size_t name_len = (size_t)(colon - q);
		while (name_len && (q[name_len - 1] == ' ' || q[name_len - 1] == '\t'))
			name_len--;
		char *v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		char *ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		*ve = '\0';
		hdrs[i] = (sip_raw_hdr_t){.name = q, .name_len = name_len, .value = v,
					  .value_len = (size_t)(ve - v), .id = hdr_id(q, name_len)};
		q = e + 1;
	}
	msg->arena = arena;
	msg->hdrs = hdrs;
	msg->nhdrs = n;
}

const char *sipmsg_raw_value(const sipmsg_t *req, sip_hdr_id_t id)
{
	for (size_t i = 0; i < req->nhdrs; i++) {
		if (req->hdrs[i].id == id)
			return req->hdrs[i].value;
	}
	return NULL;
}

/* Writes the top Via value with received/rport into the room after the
 * header copy: the raw top value (up to the first comma) with the rport
 * value set and ";received=IP" appended -- what libosip2 would write for
 * the fixed Via, without re-serialising the rest.  A received parameter
 * already there or a quoted string leaves it to libosip2 (top_via NULL). */
static void build_top_via(sipmsg_t *msg, const char *ip, const char *rport_value, bool received)
{
	const sip_raw_hdr_t *h = NULL;
	for (size_t i = 0; i < msg->nhdrs && !h; i++) {
		if (msg->hdrs[i].id == SIPH_VIA)
			h = &msg->hdrs[i];
	}
	if (!h)
		return;
	const char *v = h->value;
	size_t top = 0;
	while (top < h->value_len && v[top] != ',') {
		if (v[top] == '"')
			return;
		top++;
	}
	size_t tl = top;
	while (tl && (v[tl - 1] == ' ' || v[tl - 1] == '\t'))
		tl--;
	size_t i = 0, rport_name_end = 0, rport_end = 0;
	bool have_rport = false;
	while (i < tl && v[i] != ';')
		i++;
	while (i < tl) {
		size_t ns = i + 1, j = i + 1;
		while (j < tl && v[j] != ';')
			j++;
		while (ns < j && (v[ns] == ' ' || v[ns] == '\t'))
			ns++;
		size_t ne = ns;
		while (ne < j && v[ne] != '=' && v[ne] != ' ' && v[ne] != '\t')
			ne++;
		if (ne - ns == 8 && strncasecmp(v + ns, "received", 8) == 0)
			return;
		if (ne - ns == 5 && strncasecmp(v + ns, "rport", 5) == 0) {
			if (have_rport)
				return;
			have_rport = true;
			rport_name_end = ne;
			rport_end = j;
		}
		i = j;
	}
	if (have_rport != (rport_value != NULL))
		return; /* libosip2 read it differently: its view wins */
	size_t iplen = strlen(ip), rplen = rport_value ? strlen(rport_value) : 0;
	if (iplen + rplen + 12 > TOP_VIA_EXTRA)
		return;
	/* The room after the index holds the size of the whole header block
	 * plus TOP_VIA_EXTRA, so any top Via fits. */
	char *out = msg->arena + msg->nhdrs * sizeof(sip_raw_hdr_t);
	char *p = out;
	if (have_rport) {
		memcpy(p, v, rport_name_end);
		p += rport_name_end;
		*p++ = '=';
		memcpy(p, rport_value, rplen);
		p += rplen;
		memcpy(p, v + rport_end, tl - rport_end);
		p += tl - rport_end;
	} else {
		memcpy(p, v, tl);
		p += tl;
	}
	if (received) {
		memcpy(p, ";received=", 10);
		p += 10;
		memcpy(p, ip, iplen);
		p += iplen;
	}
	*p = '\0';
	msg->top_via = out;
	msg->via_rest = v + top;
}

int sipmsg_append_vias(const sipmsg_t *req, buf_t *out)
{
	if (req->hdrs && req->top_via) {
		bool first = true;
		for (size_t i = 0; i < req->nhdrs; i++) {
			const sip_raw_hdr_t *h = &req->hdrs[i];
			if (h->id != SIPH_VIA)
				continue;
			buf_put_lit(out, "Via: ");
			if (first) {
				buf_puts(out, req->top_via);
				buf_puts(out, req->via_rest);
				first = false;
			} else {
				buf_append(out, h->value, h->value_len);
			}
			buf_put_lit(out, "\r\n");
		}
		return out->err;
	}
	osip_list_iterator_t it;
	for (osip_via_t *v = osip_list_get_first(&req->m->vias, &it); v; v = osip_list_get_next(&it)) {
		char *s = NULL;
		if (osip_via_to_str(v, &s) != 0 || !s) {
			out->err = out->err ? out->err : -ENOMEM;
			return out->err;
		}
		buf_put_lit(out, "Via: ");
		buf_puts(out, s);
		buf_put_lit(out, "\r\n");
		osip_free(s);
	}
	return out->err;
}

/* Records the address the request really came from in the top Via
 * (RFC 3261 §18.2.1, RFC 3581 §4): received= when the sent-by host is not
 * the source address, rport=<port> when the client asked for it. */
static void fix_top_via(sipmsg_t *msg)
{
	osip_via_t *via = msg->via;
	char ip[64];
	uint16_t port = 0;
	if (tp_addr_to_str(&msg->src.addr, ip, sizeof ip, &port) != 0)
		return;
	osip_generic_param_t *rport = NULL;
	osip_via_param_get_byname(via, "rport", &rport);
	bool need_received = !via->host || strcasecmp(via->host, ip) != 0 || rport != NULL;
	osip_generic_param_t *rec = NULL;
	osip_via_param_get_byname(via, "received", &rec);
	if (need_received) {
		if (rec) {
			osip_free(rec->gvalue);
			rec->gvalue = osip_strdup(ip);
		} else {
			osip_via_set_received(via, osip_strdup(ip));
		}
	}
	char pbuf[8];
	if (rport) {
		/* Decimal by hand: snprintf costs more than the rest of this. */
		char *e = pbuf + sizeof pbuf - 1;
		*e = '\0';
		unsigned v = port;
		do {
			*--e = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		memmove(pbuf, e, (size_t)(pbuf + sizeof pbuf - e));
		osip_free(rport->gvalue);
		rport->gvalue = osip_strdup(pbuf);
	}
	if (msg->hdrs && !rec)
		build_top_via(msg, ip, rport ? pbuf : NULL, need_received);
}

static bool is_token_char(unsigned char c)
{
	/* RFC 3261 §25.1 token */
	return isalnum(c) || (c && strchr("-.!%*_+`'~", c) != NULL);
}

/* libosip2 5.3 cannot parse some valid requests: a method made of the
 * rarer token characters (RFC 4475 §3.1.1.2) or a Request-URI of a
 * scheme it does not know (§3.3.3).  For such a request whose request
 * line is well formed, the answer is what a parser that understood it
 * would give: 416 for a scheme other than sip, sips or tel (RFC 3261
 * §8.2.2.1), 501 for a method we do not implement (§8.2.1); otherwise
 * 400.  Only the request line is looked at. */
static int unparsable_request_code(const char *data, size_t len, char *why, size_t whylen)
{
	static const char *const KNOWN[] = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS",
					    "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
					    "INFO", "REFER", "MESSAGE", "UPDATE", NULL};
	snprintf(why, whylen, "Malformed Message");
	const char *end = memchr(data, '\n', len);
	if (!end)
		return 400;
	size_t n = (size_t)(end - data);
	if (n && data[n - 1] == '\r')
		n--;
	size_t m = 0;
	while (m < n && is_token_char((unsigned char)data[m]))
		m++;
	if (m == 0 || m >= n || data[m] != ' ')
		return 400;
	const char *uri = data + m + 1;
	const char *sp = memchr(uri, ' ', n - m - 1);
	if (!sp || sp == uri || (size_t)(data + n - (sp + 1)) != 7 || memcmp(sp + 1, "SIP/2.0", 7) != 0)
		return 400;
	size_t k = 0;
	size_t ulen = (size_t)(sp - uri);
	if (!isalpha((unsigned char)uri[0]))
		return 400;
	while (k < ulen && (isalnum((unsigned char)uri[k]) || uri[k] == '+' || uri[k] == '-' ||
			    uri[k] == '.'))
		k++;
	if (k == ulen || uri[k] != ':')
		return 400;
	bool sip_scheme = (k == 3 && strncasecmp(uri, "sip", 3) == 0) ||
			  (k == 4 && strncasecmp(uri, "sips", 4) == 0) ||
			  (k == 3 && strncasecmp(uri, "tel", 3) == 0);
	bool known = false;
	for (int i = 0; KNOWN[i] && !known; i++)
		known = strlen(KNOWN[i]) == m && memcmp(KNOWN[i], data, m) == 0;
	if (!known) {
		snprintf(why, whylen, "Method Not Implemented");
		return 501;
	}
	if (!sip_scheme) {
		snprintf(why, whylen, "Unsupported URI Scheme");
		return 416;
	}
	return 400;
}

int sipmsg_parse(const char *data, size_t len, const tp_peer_t *src,
		 const sip_limits_t *lim, sipmsg_t **out, char *why, size_t whylen)
{
	*out = NULL;
	size_t nheaders = 0, body_off = 0;
	scan_headers(data, len, &nheaders, &body_off);
	if (lim->max_headers && nheaders > lim->max_headers) {
		snprintf(why, whylen, "Too Many Headers");
		return 400;
	}
	if (lim->max_body && len - body_off > lim->max_body) {
		snprintf(why, whylen, "Message Body Too Large");
		return 413;
	}
	/* libosip2 unescapes URIs into C strings, so "%00" would cut a user
	 * part short and "sip:alice%00x@d" would become alice's AOR (RFC 4475
	 * §3.1.1.6 warns about exactly this).  Such URIs are refused. */
	if (has_escaped_nul(data, body_off)) {
		snprintf(why, whylen, "Escaped NUL In Message");
		return 400;
	}

	sipmsg_t *msg = calloc(1, sizeof *msg);
	if (!msg)
		return -1;
	msg->src = *src;
	int code = 400;
	if (osip_message_init(&msg->m) != 0) {
		code = -1;
		goto fail;
	}
	if (osip_message_parse(msg->m, data, len) != 0) {
		code = unparsable_request_code(data, len, why, whylen);
		goto fail;
	}
	osip_message_t *m = msg->m;
	msg->is_request = MSG_IS_REQUEST(m);
	msg->via = osip_list_get(&m->vias, 0);
	if (!msg->via || !msg->via->host || !msg->via->protocol) {
		snprintf(why, whylen, "Missing or Malformed Via");
		goto fail;
	}
	osip_generic_param_t *br = NULL;
	osip_via_param_get_byname(msg->via, "branch", &br);
	msg->branch = br ? br->gvalue : NULL;
	if (!m->from || !m->from->url) {
		snprintf(why, whylen, "Missing or Malformed From");
		goto fail;
	}
	if (!m->to || !m->to->url) {
		snprintf(why, whylen, "Missing or Malformed To");
		goto fail;
	}
	if (!m->call_id || !m->call_id->number) {
		snprintf(why, whylen, "Missing Call-ID");
		goto fail;
	}
	/* RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned
	 * integer below 2^31. */
	if (!m->cseq || !m->cseq->method || !all_digits(m->cseq->number, 10) ||
	    strtoull(m->cseq->number, NULL, 10) > 0x7fffffffULL) {
		snprintf(why, whylen, "Missing or Malformed CSeq");
		goto fail;
	}
	msg->cseq = (uint32_t)strtoul(m->cseq->number, NULL, 10);
	if (!uri_host_ok(m->from->url) || !uri_host_ok(m->to->url)) {
		snprintf(why, whylen, "Malformed From Or To Host");
		goto fail;
	}
	for (int i = 0;; i++) {
		osip_contact_t *ct = osip_list_get(&m->contacts, i);
		if (!ct)
			break;
		if (ct->url && !uri_host_ok(ct->url)) {
			snprintf(why, whylen, "Malformed Contact Host");
			goto fail;
		}
	}
	if (msg->is_request) {
		if (!m->sip_method || !m->req_uri) {
			snprintf(why, whylen, "Malformed Request-Line");
			goto fail;
		}
		if (!m->sip_version || strcasecmp(m->sip_version, "SIP/2.0") != 0) {
			code = 505;
			snprintf(why, whylen, "Version Not Supported");
			goto fail;
		}
		if (strcmp(m->cseq->method, m->sip_method) != 0) {
			snprintf(why, whylen, "CSeq Method Does Not Match Request");
			goto fail;
		}
		if (!scheme_ok(m->req_uri)) {
			code = 416;
			snprintf(why, whylen, "Unsupported URI Scheme");
			goto fail;
		}
		if (!uri_host_ok(m->req_uri)) {
			snprintf(why, whylen, "Malformed Request-URI Host");
			goto fail;
		}
		msg->method = m->sip_method;
	} else {
		msg->method = m->cseq->method;
		msg->status = m->status_code;
		msg->reason = m->reason_phrase ? m->reason_phrase : "";
	}
	/* Content-Length larger than what arrived means a truncated
	 * datagram (RFC 3261 §18.3): reject rather than guess. */
	if (m->content_length && m->content_length->value) {
		if (!all_digits(m->content_length->value, 10)) {
			snprintf(why, whylen, "Malformed Content-Length");
			goto fail;
		}
		unsigned long long cl = strtoull(m->content_length->value, NULL, 10);
		if (cl > len - body_off) {
			snprintf(why, whylen, "Content-Length Larger Than Body");
			goto fail;
		}
	}
	if (msg->is_request) {
		build_raw_index(msg, data, body_off);
		fix_top_via(msg);
		if (msg->hdrs) {
			msg->from_raw = (char *)sipmsg_raw_value(msg, SIPH_FROM);
			msg->to_raw = (char *)sipmsg_raw_value(msg, SIPH_TO);
			msg->raw_in_arena = true;
		} else {
			msg->from_raw = raw_header_value(data, body_off, "from", 'f');
			msg->to_raw = raw_header_value(data, body_off, "to", 't');
		}
	}
	*out = msg;
	return 0;
fail:
	/* A response cannot be answered; an unparsable request is answered
	 * by the caller from the raw bytes when it has a Via. */
	if (code > 0 && msg->m && !msg->is_request && msg->m->status_code > 0)
		code = -1;
	sipmsg_free(msg);
	return code;
}

/* --- the light scan of a response ---------------------------------------- */

/* Whether the header name line[0..n) (before the colon, trailing white
 * space removed) is name or its compact form. */
static bool hname_is(const char *line, size_t n, const char *name, char compact)
{
	size_t nl = strlen(name);
	if (n == nl && strncasecmp(line, name, nl) == 0)
		return true;
	return compact && n == 1 && (line[0] | 0x20) == compact;
}

/* The branch parameter of the top Via value v[0..n) (up to the first
 * comma).  Only the plain form is accepted -- "SIP/2.0/" transport, white
 * space, a host of name, IPv4 or [IPv6] characters, an optional port,
 * then ";name[=value]" parameters of token characters (":[]" in values,
 * for received and maddr) without white space, the branch named in lower
 * case -- so that the branch found here is the one libosip2 finds (the
 * fuzzer checks that); anything else is -EINVAL and takes the full path. */
static int via_branch(const char *v, size_t n, const char **branch, size_t *blen)
{
	size_t i = 0;
	if (n < 8 || strncasecmp(v, "SIP/2.0/", 8) != 0)
		return -EINVAL;
	i = 8;
	size_t ts = i;
	while (i < n && is_token_char((unsigned char)v[i]))
		i++;
	if (i == ts || i >= n || (v[i] != ' ' && v[i] != '\t'))
		return -EINVAL;
	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	size_t hs = i;
	while (i < n && (isalnum((unsigned char)v[i]) || strchr(".-:[]", v[i])))
		i++;
	if (i == hs)
		return -EINVAL;
	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	bool found = false;
	while (i < n) {
		if (v[i] != ';')
			return -EINVAL;
		i++;
		size_t ns = i;
		while (i < n && is_token_char((unsigned char)v[i]))
			i++;
		size_t ne = i;
		if (ne == ns)
			return -EINVAL;
		size_t vs = i, ve = i;
		if (i < n && v[i] == '=') {
			vs = ++i;
			while (i < n && (is_token_char((unsigned char)v[i]) || strchr(":[]", v[i])))
				i++;
			ve = i;
			if (ve == vs)
				return -EINVAL;
		}
		if (ne - ns == 6 && strncasecmp(v + ns, "branch", 6) == 0) {
			if (found || strncmp(v + ns, "branch", 6) != 0 || ve == vs || ve - vs > 256)
				return -EINVAL;
			found = true;
			*branch = v + vs;
			*blen = ve - vs;
		}
	}
	return found ? 0 : -EINVAL;
}

int sipmsg_scan_response(const char *data, size_t len, const sip_limits_t *lim,
			 sip_resp_view_t *out)
{
	memset(out, 0, sizeof *out);
	if (len < 14 || memcmp(data, "SIP/2.0 ", 8) != 0)
		return -EINVAL;
	if (!isdigit((unsigned char)data[8]) || !isdigit((unsigned char)data[9]) ||
	    !isdigit((unsigned char)data[10]) || data[11] != ' ')
		return -EINVAL;
	out->status = (data[8] - '0') * 100 + (data[9] - '0') * 10 + (data[10] - '0');
	if (out->status < 100 || out->status > 699)
		return -EINVAL;
	size_t i = 12;
	out->reason = data + i;
	while (i < len && data[i] != '\r') {
		unsigned char c = (unsigned char)data[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
		i++;
	}
	out->reason_len = (size_t)(data + i - out->reason);
	if (i + 1 >= len || data[i + 1] != '\n')
		return -EINVAL;
	i += 2;
	size_t nheaders = 0;
	bool have_from = false, have_to = false, have_callid = false, have_cl = false;
	bool have_via = false, have_cseq = false;
	unsigned long long clen = 0;
	for (;;) {
		if (i + 1 >= len)
			return -EINVAL; /* no end of the header block */
		if (data[i] == '\r') {
			if (data[i + 1] != '\n')
				return -EINVAL;
			i += 2;
			break;
		}
		if (data[i] == ' ' || data[i] == '\t')
			return -EINVAL; /* folding: leave it to the full parser */
		size_t start = i;
		const char *cr = memchr(data + i, '\r', len - i);
		if (!cr)
			return -EINVAL;
		i = (size_t)(cr - data);
		if (i + 1 >= len || data[i + 1] != '\n')
			return -EINVAL;
		const char *line = data + start;
		size_t n = i - start;
		/* Control bytes and %00 (see sipmsg_parse) go the full way. */
		if (has_ctl(line, n) || has_escaped_nul(line, n))
			return -EINVAL;
		i += 2;
		if (lim && lim->max_headers && ++nheaders > lim->max_headers)
			return -EINVAL;
		size_t colon = 0;
		while (colon < n && line[colon] != ':')
			colon++;
		if (colon == n)
			return -EINVAL;
		size_t ne = colon;
		while (ne > 0 && (line[ne - 1] == ' ' || line[ne - 1] == '\t'))
			ne--;
		const char *v = line + colon + 1;
		size_t vn = n - colon - 1;
		while (vn && (*v == ' ' || *v == '\t'))
			v++, vn--;
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		if (hname_is(line, ne, "via", 'v')) {
			if (have_via)
				continue; /* only the top Via matters */
			have_via = true;
			size_t top = 0;
			while (top < vn && v[top] != ',' && v[top] != '"')
				top++;
			if (top < vn && v[top] == '"')
				return -EINVAL;
			if (via_branch(v, top, &out->branch, &out->branch_len) != 0)
				return -EINVAL;
		} else if (hname_is(line, ne, "cseq", 0)) {
			if (have_cseq)
				return -EINVAL;
			have_cseq = true;
			size_t k = 0;
			unsigned long long num = 0;
			while (k < vn && isdigit((unsigned char)v[k]) && k < 11)
				num = num * 10 + (unsigned)(v[k++] - '0');
			if (k == 0 || num > 0x7fffffffULL || k >= vn || (v[k] != ' ' && v[k] != '\t'))
				return -EINVAL;
			while (k < vn && (v[k] == ' ' || v[k] == '\t'))
				k++;
			out->method = v + k;
			while (k < vn && v[k] != ' ' && v[k] != '\t')
				k++;
			out->method_len = (size_t)(v + k - out->method);
			if (k != vn || out->method_len == 0 || out->method_len > 32)
				return -EINVAL;
			out->cseq = (uint32_t)num;
		} else if (hname_is(line, ne, "content-length", 'l')) {
			if (have_cl || vn == 0 || vn > 10)
				return -EINVAL;
			have_cl = true;
			for (size_t k = 0; k < vn; k++) {
				if (!isdigit((unsigned char)v[k]))
					return -EINVAL;
				clen = clen * 10 + (unsigned)(v[k] - '0');
			}
		} else if (hname_is(line, ne, "from", 'f')) {
			have_from = true;
		} else if (hname_is(line, ne, "to", 't')) {
			have_to = true;
		} else if (hname_is(line, ne, "call-id", 'i')) {
			have_callid = true;
		}
	}
	if (!have_via || !have_cseq || !have_from || !have_to || !have_callid)
		return -EINVAL;
	if (clen > len - i || (lim && lim->max_body && len - i > lim->max_body))
		return -EINVAL;
	return 0;
}

void sipmsg_free(sipmsg_t *msg)
{
	if (!msg)
		return;
	if (msg->m)
		osip_message_free(msg->m);
	if (!msg->raw_in_arena) {
		free(msg->from_raw);
		free(msg->to_raw);
	}
	free(msg->arena);
	free(msg);
}

/* --- header access ------------------------------------------------------ */

static bool name_matches(const char *hname, const char *name, const char *compact)
{
	return strcasecmp(hname, name) == 0 || (compact && strcasecmp(hname, compact) == 0);
}

const char *sipmsg_header_nth(const sipmsg_t *msg, const char *name, const char *compact, int nth)
{
	/* An iterator, not osip_list_get(i): that walks from the head each
	 * time and would make a scan quadratic in the header count. */
	osip_list_iterator_t it;
	for (osip_header_t *h = osip_list_get_first(&msg->m->headers, &it); h;
	     h = osip_list_get_next(&it)) {
		if (h->hname && name_matches(h->hname, name, compact)) {
			if (nth-- == 0)
				return h->hvalue ? h->hvalue : "";
		}
	}
	return NULL;
}

const char *sipmsg_header(const sipmsg_t *msg, const char *name, const char *compact)
{
	return sipmsg_header_nth(msg, name, compact, 0);
}

int sipmsg_header_uint(const sipmsg_t *msg, const char *name, uint32_t *out)
{
	const char *v = sipmsg_header(msg, name, NULL);
	if (!v)
		return -ENOENT;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	unsigned long long x = 0;
	for (; isdigit((unsigned char)*v); v++) {
		if (x < 0xffffffffULL)
			x = x * 10 + (unsigned)(*v - '0');
	}
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v)
		return -EINVAL;
	*out = x > 0xffffffffULL ? 0xffffffffU : (uint32_t)x;
	return 0;
}

const char *sipmsg_from_tag(const sipmsg_t *msg)
{
	osip_generic_param_t *t = NULL;
	osip_from_get_tag(msg->m->from, &t);
	return t ? t->gvalue : NULL;
}

const char *sipmsg_to_tag(const sipmsg_t *msg)
{
	osip_generic_param_t *t = NULL;
	osip_to_get_tag(msg->m->to, &t);
	return t ? t->gvalue : NULL;
}

const char *sipmsg_call_id(const sipmsg_t *msg)
{
	/* libosip2 splits "number@host"; the owned copy is built once and
	 * stashed in application_data? No: keep it simple and stable by
	 * storing it in the message's call_id host-joined form. */
	osip_call_id_t *c = msg->m->call_id;
	if (c->host && *c->host) {
		size_t a = strlen(c->number), b = strlen(c->host);
		char *joined = osip_malloc(a + b + 2);
		if (!joined)
			return c->number;
		memcpy(joined, c->number, a);
		joined[a] = '@';
		memcpy(joined + a + 1, c->host, b + 1);
		osip_free(c->number);
		osip_free(c->host);
		c->number = joined;
		c->host = NULL;
	}
	return c->number;
}

int sip_uri_aor(const osip_uri_t *uri, char *out, size_t outlen)
{
	if (!uri || !uri->scheme || !uri->host || !*uri->host ||
	    (strcasecmp(uri->scheme, "sip") != 0 && strcasecmp(uri->scheme, "sips") != 0))
		return -EINVAL;
	if (!uri->username || !*uri->username)
		return -EINVAL;
	size_t need = 4 + strlen(uri->username) + 1 + strlen(uri->host) + 1;
	if (need > outlen)
		return -ENOSPC;
	char *p = out;
	memcpy(p, "sip:", 4);
	p += 4;
	for (const char *s = uri->username; *s; s++)
		*p++ = *s;
	*p++ = '@';
	for (const char *s = uri->host; *s; s++)
		*p++ = (char)tolower((unsigned char)*s);
	*p = '\0';
	return 0;
}

/* The next option tag of a comma-separated list at *p (its length in
 * *n), advancing *p; NULL at the end. */
static const char *next_option_tag(const char **p, size_t *n)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	const char *start = s;
	while (*s && *s != ',' && *s != ' ' && *s != '\t')
		s++;
	*p = s;
	*n = (size_t)(s - start);
	return *n ? start : NULL;
}

bool sipmsg_has_option_tag(const sipmsg_t *msg, const char *name, const char *compact,
			   const char *tag)
{
	size_t tl = strlen(tag);
	for (int i = 0;; i++) {
		const char *v = sipmsg_header_nth(msg, name, compact, i);
		if (!v)
			return false;
		const char *p = v, *start;
		size_t n;
		while ((start = next_option_tag(&p, &n)) != NULL)
			if (n == tl && strncasecmp(start, tag, tl) == 0)
				return true;
	}
}

bool sipmsg_require_ok(const sipmsg_t *msg, const char *const *supported,
		       char *unsupported, size_t len)
{
	bool ok = true;
	size_t used = 0;
	unsupported[0] = '\0';
	for (int i = 0;; i++) {
		const char *v = sipmsg_header_nth(msg, "require", NULL, i);
		if (!v)
			break;
		const char *p = v, *start;
		size_t n;
		while ((start = next_option_tag(&p, &n)) != NULL) {
			bool known = false;
			for (const char *const *s = supported; *s; s++) {
				if (strlen(*s) == n && strncasecmp(*s, start, n) == 0)
					known = true;
			}
			if (!known) {
				ok = false;
				if (used + n + 3 < len) {
					if (used) {
						memcpy(unsupported + used, ", ", 2);
						used += 2;
					}
					memcpy(unsupported + used, start, n);
					used += n;
					unsupported[used] = '\0';
				}
			}
		}
	}
	return ok;
}

/* --- responses ---------------------------------------------------------- */

static void append_header_from(buf_t *out, const char *name, const osip_from_t *f, const char *raw,
			       const char *add_tag)
{
	if (raw) {
		buf_puts(out, name);
		buf_put_lit(out, ": ");
		buf_puts(out, raw);
		if (add_tag) {
			buf_put_lit(out, ";tag=");
			buf_puts(out, add_tag);
		}
		buf_put_lit(out, "\r\n");
		return;
	}
	char *s = NULL;
	if (osip_from_to_str(f, &s) != 0 || !s) {
		out->err = out->err ? out->err : -ENOMEM;
		return;
	}
	buf_printf(out, "%s: %s", name, s);
	if (add_tag)
		buf_printf(out, ";tag=%s", add_tag);
	buf_puts(out, "\r\n");
	osip_free(s);
}

int sipmsg_build_response(const sipmsg_t *req, int code, const char *reason,
			  const char *to_tag, const char *extra,
			  const char *ctype, const char *body, size_t bodylen, buf_t *out)
{
	osip_message_t *m = req->m;
	if (!reason)
		reason = sip_reason_phrase(code);
	/* Appends, not printf: every answer is built here. */
	buf_put_lit(out, "SIP/2.0 ");
	buf_put_uint(out, (unsigned)code);
	buf_put_lit(out, " ");
	buf_puts(out, reason);
	buf_put_lit(out, "\r\n");
	/* Every Via in order (RFC 3261 §8.2.6.2). */
	if (sipmsg_append_vias(req, out) != 0)
		return out->err;
	append_header_from(out, "From", m->from, req->from_raw, NULL);
	const char *existing = sipmsg_to_tag(req);
	/* A 100 Trying never carries a To tag (RFC 3261 §8.2.6.2). */
	append_header_from(out, "To", m->to, req->to_raw, (!existing && code > 100) ? to_tag : NULL);
	buf_put_lit(out, "Call-ID: ");
	buf_puts(out, sipmsg_call_id(req));
	buf_put_lit(out, "\r\nCSeq: ");
	buf_puts(out, m->cseq->number);
	buf_put_lit(out, " ");
	buf_puts(out, m->cseq->method);
	buf_put_lit(out, "\r\n");
	if (code == 100) {
		const char *ts = sipmsg_header(req, "timestamp", NULL);
		if (ts)
			buf_printf(out, "Timestamp: %s\r\n", ts);
	}
	buf_puts(out, "Server: " SIP_SERVER_NAME "\r\n");
	if (extra)
		buf_puts(out, extra);
	if (body && bodylen) {
		buf_put_lit(out, "Content-Type: ");
		buf_puts(out, ctype ? ctype : "text/plain");
		buf_put_lit(out, "\r\nContent-Length: ");
		buf_put_uint(out, bodylen);
		buf_put_lit(out, "\r\n\r\n");
		buf_append(out, body, bodylen);
	} else {
		buf_puts(out, "Content-Length: 0\r\n\r\n");
	}
	return out->err;
}

void sipmsg_response_dest(const sipmsg_t *req, tp_peer_t *dst)
{
	*dst = req->src;
	if (req->src.proto == TP_TCP)
		return; /* same connection; tp_send reconnects to src.addr if closed */
	/* UDP: with rport, back to the source address and port (RFC 3581
	 * §4); otherwise to the source address (received) and the Via port
	 * (RFC 3261 §18.2.2), default 5060. */
	osip_generic_param_t *rport = NULL;
	osip_via_param_get_byname(req->via, "rport", &rport);
	if (rport && rport->gvalue)
		return;
	unsigned port = 5060;
	if (req->via->port && *req->via->port) {
		unsigned long p = strtoul(req->via->port, NULL, 10);
		if (p > 0 && p < 65536)
			port = (unsigned)p;
	}
	if (dst->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&dst->addr)->sin_port = htons((uint16_t)port);
	else if (dst->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&dst->addr)->sin6_port = htons((uint16_t)port);
}

/* Returns the header's canonical name when the line starts a header we
 * copy into a raw error response, else NULL. */
static const char *raw_copy_name(const char *line, size_t n, size_t *name_len)
{
	static const struct { const char *full, *compact, *canon; } names[] = {
		{"via", "v", "Via"}, {"from", "f", "From"}, {"to", "t", "To"},
		{"call-id", "i", "Call-ID"}, {"cseq", NULL, "CSeq"},
	};
	size_t colon = 0;
	while (colon < n && line[colon] != ':')
		colon++;
	if (colon == n)
		return NULL;
	size_t end = colon;
	while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t'))
		end--;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if ((strlen(names[i].full) == end && strncasecmp(line, names[i].full, end) == 0) ||
		    (names[i].compact && strlen(names[i].compact) == end &&
		     strncasecmp(line, names[i].compact, end) == 0)) {
			*name_len = colon + 1;
			return names[i].canon;
		}
	}
	return NULL;
}

int sipmsg_raw_error_response(const char *data, size_t len, int code, const char *reason,
			      buf_t *out)
{
	/* Responses (status lines) are never answered. */
	if (len >= 8 && strncmp(data, "SIP/2.0 ", 8) == 0)
		return -EINVAL;
	bool have_via = false, have_cseq = false;
	buf_t hdrs;
	buf_init(&hdrs, 0); /* bounded by the message size limit */
	size_t i = 0;
	/* Skip the request line. */
	while (i < len && data[i] != '\n')
		i++;
	i++;
	while (i < len) {
		size_t start = i;
		while (i < len && data[i] != '\n')
			i++;
		size_t n = i - start;
		if (n && data[start + n - 1] == '\r')
			n--;
		i++;
		if (n == 0)
			break;
		size_t name_len = 0;
		const char *canon = raw_copy_name(data + start, n, &name_len);
		if (!canon)
			continue;
		if (strcmp(canon, "CSeq") == 0) {
			if (have_cseq)
				continue;
			have_cseq = true;
		}
		if (strcmp(canon, "Via") == 0)
			have_via = true;
		/* Copy only printable bytes: the request was malformed. */
		buf_printf(&hdrs, "%s:", canon);
		for (size_t k = start + name_len; k < start + n; k++) {
			unsigned char c = (unsigned char)data[k];
			if (c >= 0x20 && c != 0x7f)
				buf_append(&hdrs, &data[k], 1);
		}
		buf_puts(&hdrs, "\r\n");
	}
	if (!have_via || hdrs.err) {
		buf_free(&hdrs);
		return -EINVAL;
	}
	buf_printf(out, "SIP/2.0 %d %s\r\n", code, reason);
	buf_append(out, hdrs.data, hdrs.len);
	buf_puts(out, "Server: " SIP_SERVER_NAME "\r\nContent-Length: 0\r\n\r\n");
	buf_free(&hdrs);
	return out->err;
}

/* --- misc --------------------------------------------------------------- */

/* xoshiro256** seeded from the kernel: tags and branches must be
 * unpredictable enough that an off-path attacker cannot guess them, and
 * cheap because every response needs one. */
static uint64_t rng_state[4];
static bool rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void)
{
	if (!rng_seeded) {
		if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
			rng_state[0] = (uint64_t)(uintptr_t)&rng_state ^ 0x9e3779b97f4a7c15ULL;
			rng_state[1] = 0xbf58476d1ce4e5b9ULL;
			rng_state[2] = 0x94d049bb133111ebULL;
			rng_state[3] = 0x2545f4914f6cdd1dULL;
		}
		rng_seeded = true;
	}
	uint64_t *s = rng_state;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

void sip_random_token(char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t r = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (i % 16 == 0)
			r = rng_next();
		out[i] = hex[r & 15];
		r >>= 4;
	}
	if (len)
		out[len - 1] = '\0';
}

const char *sip_reason_phrase(int code)
{
	switch (code) {
	case 100: return "Trying";
	case 180: return "Ringing";
	case 181: return "Call Is Being Forwarded";
	case 182: return "Queued";
	case 183: return "Session Progress";
	case 200: return "OK";
	case 202: return "Accepted";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Moved Temporarily";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 412: return "Conditional Request Failed";
	case 413: return "Request Entity Too Large";
	case 414: return "Request-URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Unsupported URI Scheme";
	case 420: return "Bad Extension";
	case 421: return "Extension Required";
	case 423: return "Interval Too Brief";
	case 480: return "Temporarily Unavailable";
	case 481: return "Call/Transaction Does Not Exist";
	case 482: return "Loop Detected";
	case 483: return "Too Many Hops";
	case 484: return "Address Incomplete";
	case 486: return "Busy Here";
	case 487: return "Request Terminated";
	case 488: return "Not Acceptable Here";
	case 489: return "Bad Event";
	case 491: return "Request Pending";
	case 500: return "Server Internal Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Server Time-out";
	case 505: return "Version Not Supported";
	case 513: return "Message Too Large";
	case 603: return "Decline";
	default:
		if (code < 200) return "Session Progress";
		if (code < 300) return "OK";
		if (code < 400) return "Redirection";
		if (code < 500) return "Client Error";
		if (code < 600) return "Server Error";
		return "Global Failure";
	}
}
