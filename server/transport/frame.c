/* SIP message framing over byte streams (RFC 3261 §18.3) and keep-alive
 * recognition (RFC 5626 §4.4.1).
 *
 * On a stream there are no datagram boundaries: a message is its start
 * line and headers up to the first empty line, followed by exactly
 * Content-Length bytes of body.  Everything here is a pure function over
 * (buf, len): the buffer is not NUL-terminated, so every access is checked
 * against len, and every byte is looked at a bounded number of times, so
 * the cost is O(len) whatever a peer sends. */
#include "server/transport/frame.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline int ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static inline bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Searches buf[from..lim) for the end of the header block: a line feed
 * followed by an empty line, i.e. "\n\r\n" or "\n\n" (RFC 3261 §7.5 says
 * CRLF; bare LF is accepted as robust implementations do).  Returns the
 * offset just past the empty line, or 0 when not found; then *resume is
 * the offset from which a later search (with more bytes) must restart, so
 * a terminator cut by lim is looked at again once complete. */
static size_t find_header_end(const char *buf, size_t lim, size_t from, size_t *resume)
{
	size_t i = from;
	while (i < lim) {
		const char *nl = memchr(buf + i, '\n', lim - i);
		if (!nl)
			break;
		size_t p = (size_t)(nl - buf);
		if (p + 1 >= lim) {
			*resume = p;
			return 0;
		}
		if (buf[p + 1] == '\n')
			return p + 2;
		if (buf[p + 1] == '\r') {
			if (p + 2 >= lim) {
				*resume = p;
				return 0;
			}
			if (buf[p + 2] == '\n')
				return p + 3;
		}
		i = p + 1;
	}
	*resume = lim;
	return 0;
}

/* Looks at one header line (without its line end).  When it is a
 * Content-Length header (long form or compact "l", RFC 3261 §7.3.3, names
 * case-insensitive, optional whitespace before and after the colon per
 * HCOLON in §25.1) stores its value in *val and returns 1; returns 0 for
 * any other line and -EBADMSG for a Content-Length whose value is not
 * plain 1*DIGIT (§20.14) — this covers "-1", "+1", "", "1 2", "0x10" and
 * values that overflow 64 bits.  A folded value is not joined: the header
 * this framer depends on must fit on one line. */
static int parse_clen_line(const char *s, size_t n, uint64_t *val)
{
	static const char longname[] = "content-length";
	size_t name = 0;
	while (name < n && s[name] != ':' && !is_wsp(s[name]))
		name++;
	bool match;
	if (name == 1)
		match = ascii_lower((unsigned char)s[0]) == 'l';
	else if (name == sizeof longname - 1) {
		match = true;
		for (size_t k = 0; k < name && match; k++)
			match = ascii_lower((unsigned char)s[k]) == longname[k];
	} else
		match = false;
	if (!match)
		return 0;

	size_t i = name;
	while (i < n && is_wsp(s[i]))
		i++;
	if (i >= n || s[i] != ':')
		return 0; /* "l" or "Content-Length" without a colon is no header */
	i++;
	while (i < n && is_wsp(s[i]))
		i++;

	uint64_t v = 0;
	size_t digits = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
		digits++;
		i++;
	}
	while (i < n && is_wsp(s[i]))
		i++;
	if (!digits || i != n)
		return -EBADMSG;
	*val = v;
	return 1;
}

/* Walks the header lines of buf[0..hend) (hend is just past the empty
 * line) and returns the Content-Length in *clen (0 when absent, RFC 3261
 * §18.3 leniency).  The start line is skipped: it is not a header. */
static int parse_clen(const char *buf, size_t hend, uint64_t *clen)
{
	bool have = false;
	uint64_t cur = 0;
	const char *nl = memchr(buf, '\n', hend);
	size_t i = nl ? (size_t)(nl - buf) + 1 : hend;

	while (i < hend) {
		nl = memchr(buf + i, '\n', hend - i);
		size_t eol = nl ? (size_t)(nl - buf) : hend;
		size_t end = eol;
		if (end > i && buf[end - 1] == '\r')
			end--;
		uint64_t v;
		int r = parse_clen_line(buf + i, end - i, &v);
		if (r < 0)
			return r;
		if (r > 0) {
			/* The same value twice is harmless (a sloppy proxy);
			 * two different values make the message boundary
			 * ambiguous, which is how request smuggling starts. */
			if (have && v != cur)
				return -EBADMSG;
			have = true;
			cur = v;
		}
		i = eol + 1;
	}
	*clen = cur;
	return 0;
}

ssize_t frame_message_resume(const char *buf, size_t len, size_t max_msg, frame_state_t *st)
{
	if (st->result < 0)
		return st->result;
	if (st->result > 0)
		return len >= (size_t)st->result ? st->result : 0;

	size_t limit = (max_msg == 0 || max_msg > (size_t)SSIZE_MAX) ? (size_t)SSIZE_MAX : max_msg;
	/* Only a header block that ends within the size limit can belong to
	 * an acceptable message, so never search further than that: a peer
	 * streaming endless header bytes costs at most max_msg of work. */
	size_t lim = len < limit ? len : limit;
	size_t from = st->scanned < lim ? st->scanned : lim;
	size_t resume = from;
	size_t hend = find_header_end(buf, lim, from, &resume);
	if (!hend) {
		st->scanned = resume;
		if (len >= limit)
			st->result = -EMSGSIZE;
		return st->result;
	}

	uint64_t clen = 0;
	int err = parse_clen(buf, hend, &clen);
	if (err) {
		st->result = err;
		return err;
	}
	if (clen > (uint64_t)(limit - hend)) {
		st->result = -EMSGSIZE;
		return st->result;
	}
	st->result = (ssize_t)(hend + (size_t)clen);
	return len >= (size_t)st->result ? st->result : 0;
}

ssize_t frame_message(const char *buf, size_t len, size_t max_msg)
{
	frame_state_t st;
	frame_state_init(&st);
	return frame_message_resume(buf, len, max_msg, &st);
}

/* RFC 5626 §4.4.1: a client keeps a flow alive with a "ping" of CRLFCRLF
 * and the server answers each with a "pong" of one CRLF.  RFC 3261 §7.5
 * also lets stray CRLFs precede a message.  Line ends are counted as units
 * ("\r\n" or a bare "\n"); two in a row make a ping.  A lone "\r" followed
 * by something else is noise too. */
size_t frame_skip_keepalive(const char *buf, size_t len, int *ping)
{
	size_t i = 0;
	size_t pair_end = 0; /* offset just past the last complete ping */
	unsigned ends = 0;
	bool seen = false;

	if (ping)
		*ping = 0;
	while (i < len) {
		if (buf[i] == '\n') {
			i++;
		} else if (buf[i] == '\r') {
			if (i + 1 == len)
				break; /* may be the start of a CRLF */
			i++;
			if (buf[i] != '\n')
				continue; /* lone CR: noise, not a line end */
			i++;
		} else {
			/* A message follows: everything before it is noise,
			 * whether or not it formed complete pings. */
			if (ping && seen)
				*ping = 1;
			return i;
		}
		if (++ends == 2) {
			ends = 0;
			seen = true;
			pair_end = i;
		}
	}
	/* Only line ends up to the end of the buffer: keep the unpaired tail,
	 * it may be the first half of a ping split across segments. */
	if (ping && seen)
		*ping = 1;
	return pair_end;
}
