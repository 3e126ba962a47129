/* The message-summary event package (RFC 3842, the message-waiting
 * indication) on the event framework.
 *
 *   mailbox owner            simpled                      voice-mail system
 *      |-- SUBSCRIBE -------->|                                  |
 *      |   Event: message-summary                                |
 *      |<-- 200, NOTIFY ------|  full state (§5): counts now      |
 *      |                      |<-- PUBLISH (RFC 3903) -----------|
 *      |                      |    Event: message-summary,        |
 *      |                      |    application/simple-message-summary
 *      |<-- NOTIFY -----------|  parsed here (on_publish), 400 if malformed
 *      |        a chat message is stored for the owner, or delivered:
 *      |<-- NOTIFY -----------|  msg_on_mailbox_change -> ev_resource_changed
 *
 * The NOTIFY body (application/simple-message-summary, RFC 3842 §5) is
 * always full state (the format has no partial form):
 *   Messages-Waiting: yes when any count of new messages is above zero or
 *     a live publication says yes (a system that signals without counts);
 *   Message-Account: the AOR of the mailbox;
 *   one summary line per message-context class (RFC 3458 §6.1) that a live
 *     publication reported, each class summed over every live publication
 *     (several voice-mail systems may publish for one user, each with its
 *     own entity-tag);
 *   Text-Message: new/old -- the chat messages messaging/ holds for the
 *     user (stored, not yet delivered: all new, none old) plus any
 *     text-message counts published.
 *
 * Who may subscribe: the mailbox owner (the framework never asks
 * authorize() about the resource itself), or a watcher that an explicit
 * allow rule (rules.c) names.  Everybody else gets 403.  The default
 * presence policy does not open a mailbox: with default policy "allow",
 * rules_eval() cannot tell an explicit allow from the default, so a
 * non-owner is refused then (see authorize()).
 *
 * PUBLISH bodies are parsed strictly and boundedly: at most MWI_MAX_BODY
 * bytes and MWI_MAX_LINES lines, lines end in CRLF (a bare LF is
 * tolerated), no control characters, the status line first, at most one
 * Message-Account, each class at most once, counts of at most 9 digits;
 * optional extension headers after an empty line are checked for header
 * syntax and ignored. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "messaging/messaging.h"
#include "presence/pkgs.h"
#include "presence/publish.h"
#include "presence/rules.h"
#include "server/base/log.h"

static const char *const TYPES[] = {"application/simple-message-summary", NULL};

/* RFC 3458 §6.1 message-context classes, in the order lines are written;
 * the names are those RFC 3842 §5 uses ("Voice-Message: 2/8 (0/2)"). */
static const char *const CLASS_NAMES[MWI_CLASSES] = {
	"Voice-Message", "Fax-Message", "Pager-Message", "Multimedia-Message", "Text-Message", "None",
};

/* --- parsing (pure) ----------------------------------------------------- */

static void why_set(char *why, size_t whylen, const char *s)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", s);
}

/* One line of [p, end): sets *line and *len (without the line end) and
 * returns the start of the next line, or NULL for a line that does not
 * end in LF (the body must end with a line end). */
static const char *next_line(const char *p, const char *end, const char **line, size_t *len)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*line = p;
	*len = (size_t)(nl - p);
	if (*len && p[*len - 1] == '\r')
		(*len)--;
	return nl + 1;
}

/* Splits "Name: value" (RFC 3261 HCOLON: optional white space around
 * the colon).  The name is a token; returns false otherwise. */
static bool split_header(const char *line, size_t len, const char **name, size_t *nlen,
			 const char **val, size_t *vlen)
{
	size_t i = 0;
	while (i < len && (isalnum((unsigned char)line[i]) || strchr("-.!%*_+`'~", line[i])))
		i++;
	if (i == 0)
		return false;
	*name = line;
	*nlen = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] != ':')
		return false;
	i++;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t e = len;
	while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t'))
		e--;
	*val = line + i;
	*vlen = e - i;
	return true;
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

/* msgcount = 1*DIGIT, at most 9 digits here (no overflow).  Advances *p. */
static bool parse_count(const char **p, const char *end, uint32_t *out)
{
	const char *s = *p;
	uint32_t v = 0;
	int n = 0;
	while (s < end && isdigit((unsigned char)*s) && n < 10) {
		v = v * 10 + (uint32_t)(*s - '0');
		s++;
		n++;
	}
	if (n == 0 || n > 9)
		return false;
	*out = v;
	*p = s;
	return true;
}

static void skip_ws(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* newmsgs SLASH oldmsgs [ LPAREN new-urgentmsgs SLASH old-urgentmsgs RPAREN ] */
static bool parse_counts(const char *v, size_t vlen, mwi_counts_t *c)
{
	const char *p = v, *end = v + vlen;
	memset(c, 0, sizeof *c);
	if (!parse_count(&p, end, &c->new_msgs))
		return false;
	skip_ws(&p, end);
	if (p == end || *p != '/')
		return false;
	p++;
	skip_ws(&p, end);
	if (!parse_count(&p, end, &c->old_msgs))
		return false;
	skip_ws(&p, end);
	if (p < end && *p == '(') {
		p++;
		skip_ws(&p, end);
		if (!parse_count(&p, end, &c->new_urgent))
			return false;
		skip_ws(&p, end);
		if (p == end || *p != '/')
			return false;
		p++;
		skip_ws(&p, end);
		if (!parse_count(&p, end, &c->old_urgent))
			return false;
		skip_ws(&p, end);
		if (p == end || *p != ')')
			return false;
		p++;
		skip_ws(&p, end);
		c->urgent = true;
	}
	return p == end;
}

/* Account-URI = SIP-URI / SIPS-URI / absoluteURI: a scheme, a colon and
 * at least one character, no white space. */
static bool valid_uri(const char *v, size_t vlen)
{
	size_t i = 0;
	if (!vlen || !isalpha((unsigned char)v[0]))
		return false;
	while (i < vlen && (isalnum((unsigned char)v[i]) || v[i] == '+' || v[i] == '-' || v[i] == '.'))
		i++;
	if (i == vlen || v[i] != ':' || i + 1 == vlen)
		return false;
	for (; i < vlen; i++) {
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f)
			return false;
	}
	return true;
}

int mwi_parse(const char *body, size_t len, mwi_summary_t *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	if (!body || len == 0) {
		why_set(why, whylen, "Empty Message Summary");
		return -EINVAL;
	}
	if (len > MWI_MAX_BODY) {
		why_set(why, whylen, "Message Summary Too Large");
		return -EMSGSIZE;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) {
			why_set(why, whylen, "Control Character In Message Summary");
			return -EINVAL;
		}
	}
	const char *p = body, *end = body + len, *line, *name, *val;
	size_t llen, nlen, vlen;
	unsigned lines = 0, ext_headers = 0;
	bool account = false, extensions = false;
	while (p < end) {
		p = next_line(p, end, &line, &llen);
		if (!p) {
			why_set(why, whylen, "Message Summary Line Without Line End");
			return -EINVAL;
		}
		if (++lines > MWI_MAX_LINES) {
			why_set(why, whylen, "Too Many Lines In Message Summary");
			return -EMSGSIZE;
		}
		if (lines == 1) {
			/* msg-status-line = "Messages-Waiting" HCOLON msg-status */
			if (!split_header(line, llen, &name, &nlen, &val, &vlen) ||
			    !name_is(name, nlen, "Messages-Waiting")) {
				why_set(why, whylen, "Messages-Waiting Must Come First");
				return -EINVAL;
			}
			if (vlen == 3 && strncasecmp(val, "yes", 3) == 0)
				out->waiting = true;
			else if (!(vlen == 2 && strncasecmp(val, "no", 2) == 0)) {
				why_set(why, whylen, "Messages-Waiting Is Neither yes Nor no");
				return -EINVAL;
			}
			continue;
		}
		if (llen == 0) {
			/* opt-msg-headers = CRLF 1*(extension-header CRLF) */
			if (extensions) {
				why_set(why, whylen, "Empty Line In Message Headers");
				return -EINVAL;
			}
			extensions = true;
			continue;
		}
		if (!split_header(line, llen, &name, &nlen, &val, &vlen)) {
			why_set(why, whylen, "Malformed Message Summary Line");
			return -EINVAL;
		}
		if (extensions) {
			ext_headers++; /* extension-header: syntax checked, content ignored */
			continue;
		}
		if (name_is(name, nlen, "Message-Account")) {
			if (account || lines != 2 || !valid_uri(val, vlen)) {
				why_set(why, whylen, "Malformed Message-Account");
				return -EINVAL;
			}
			account = true;
			continue;
		}
		int cls = -1;
		for (int i = 0; i < MWI_CLASSES; i++) {
			if (name_is(name, nlen, CLASS_NAMES[i]))
				cls = i;
		}
		if (cls < 0) {
			why_set(why, whylen, "Unknown Message Context Class");
			return -EINVAL;
		}
		if (out->present & (1u << cls)) {
			why_set(why, whylen, "Message Context Class Repeated");
			return -EINVAL;
		}
		if (!parse_counts(val, vlen, &out->c[cls])) {
			why_set(why, whylen, "Malformed Message Counts");
			return -EINVAL;
		}
		out->present |= 1u << cls;
	}
	if (extensions && !ext_headers) {
		/* "CRLF 1*(extension-header CRLF)": at least one header. */
		why_set(why, whylen, "Empty Message Headers");
		return -EINVAL;
	}
	return 0;
}

static uint32_t sat_add(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }

void mwi_merge(mwi_summary_t *into, const mwi_summary_t *from)
{
	into->waiting = into->waiting || from->waiting;
	for (int i = 0; i < MWI_CLASSES; i++) {
		if (!(from->present & (1u << i)))
			continue;
		mwi_counts_t *d = &into->c[i];
		const mwi_counts_t *s = &from->c[i];
		d->new_msgs = sat_add(d->new_msgs, s->new_msgs);
		d->old_msgs = sat_add(d->old_msgs, s->old_msgs);
		d->new_urgent = sat_add(d->new_urgent, s->new_urgent);
		d->old_urgent = sat_add(d->old_urgent, s->old_urgent);
		d->urgent = d->urgent || s->urgent;
		into->present |= 1u << i;
	}
}

int mwi_format(const char *account, const mwi_summary_t *s, buf_t *out)
{
	bool waiting = s->waiting;
	for (int i = 0; i < MWI_CLASSES; i++) {
		if ((s->present & (1u << i)) && s->c[i].new_msgs)
			waiting = true;
	}
	buf_printf(out, "Messages-Waiting: %s\r\n", waiting ? "yes" : "no");
	buf_printf(out, "Message-Account: %s\r\n", account);
	for (int i = 0; i < MWI_CLASSES; i++) {
		if (!(s->present & (1u << i)))
			continue;
		const mwi_counts_t *c = &s->c[i];
		buf_printf(out, "%s: %u/%u", CLASS_NAMES[i], (unsigned)c->new_msgs, (unsigned)c->old_msgs);
		if (c->urgent)
			buf_printf(out, " (%u/%u)", (unsigned)c->new_urgent, (unsigned)c->old_urgent);
		buf_puts(out, "\r\n");
	}
	return out->err;
}

/* --- the package -------------------------------------------------------- */

static void merge_pub(const pub_doc_t *d, void *arg)
{
	mwi_summary_t one;
	/* Validated by on_publish when it was accepted; a row that no longer
	 * parses (loaded after a format change) is skipped, not fatal. */
	if (mwi_parse(d->body, d->len, &one, NULL, 0) == 0)
		mwi_merge(arg, &one);
}

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	const char *aor = ev_sub_resource(sub);
	*ctype = TYPES[0];
	mwi_summary_t s;
	memset(&s, 0, sizeof s);
	pub_foreach(pkg_message_summary.name, aor, merge_pub, &s);
	unsigned nnew = 0, nold = 0;
	msg_mailbox_count(aor, &nnew, &nold);
	mwi_summary_t chat = {.present = 1u << MWI_TEXT, .c[MWI_TEXT] = {.new_msgs = nnew, .old_msgs = nold}};
	mwi_merge(&s, &chat);
	return mwi_format(aor, &s, out);
}

static int on_publish(const char *resource, const char *ctype, const char *body, size_t len,
		      char *why, size_t whylen)
{
	(void)resource;
	(void)ctype;
	mwi_summary_t s;
	switch (mwi_parse(body, len, &s, why, whylen)) {
	case 0: return 0;
	case -EMSGSIZE: return 413;
	default: return 400;
	}
}

/* A watcher that is not the owner needs a rule that allows it.  rules.c
 * answers with the default policy when no rule names the watcher, so the
 * answer for a watcher no rule can name (PROBE: no AOR or domain rule
 * matches an empty user at an empty host) tells the default apart: an
 * "allow" that differs from it is a rule's.  When the default itself is
 * "allow" the two cannot be told apart and the mailbox stays closed. */
static ev_auth_t authorize(const char *watcher, const char *resource)
{
	static const char PROBE[] = "sip:@";
	if (strcmp(watcher, resource) == 0)
		return EV_AUTH_ALLOW;
	if (rules_eval(resource, watcher) == EV_AUTH_ALLOW && rules_eval(resource, PROBE) != EV_AUTH_ALLOW)
		return EV_AUTH_ALLOW;
	return EV_AUTH_BLOCK;
}

const ev_package_t pkg_message_summary = {
	.name = "message-summary",
	.notify_types = TYPES,
	.publish_types = TYPES,
	.default_expires = 3600,
	.self_only = false,
	.authorize = authorize,
	.body_for = body_for,
	.on_publish = on_publish,
};

/* A stored chat message committed, was delivered, expired or was purged. */
static void on_mailbox(void *arg, const char *aor, unsigned new_count, unsigned old_count)
{
	(void)arg;
	(void)new_count;
	(void)old_count;
	ev_resource_changed(&pkg_message_summary, aor);
}

int pkg_message_summary_init(void)
{
	int err = ev_register_package(&pkg_message_summary);
	if (!err)
		err = msg_on_mailbox_change(on_mailbox, NULL);
	if (err)
		LOGE("presence", "message-summary package: initialisation failed (%d)", err);
	return err;
}
