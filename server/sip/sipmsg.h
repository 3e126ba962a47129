/* SIP message helpers over libosip2: parse with limits, read common
 * headers, fix the top Via (RFC 3261 §18.2.1 received, RFC 3581 rport),
 * build responses textually (fast: no clone of the request), and pick the
 * response destination (RFC 3261 §18.2.2).
 *
 * A sipmsg_t is the per-message context: it owns the parsed
 * osip_message_t and dies with its transaction; long-lived objects copy
 * what they keep. */
#ifndef SD_SIPMSG_H
#define SD_SIPMSG_H

#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/buf.h"
#include "server/transport/tp.h"

#define SIP_SERVER_NAME "simpled/0.1"

/* Header lines of a request as received (see sipmsg_t.hdrs). */
typedef enum sip_hdr_id {
	SIPH_OTHER,
	SIPH_VIA,
	SIPH_FROM,
	SIPH_TO,
	SIPH_CALL_ID,
	SIPH_CSEQ,
	SIPH_CONTENT_TYPE,
	SIPH_CONTENT_LENGTH,
	SIPH_MAX_FORWARDS,
	SIPH_ROUTE,
	SIPH_PROXY_AUTHORIZATION,
} sip_hdr_id_t;

typedef struct sip_raw_hdr {
	const char *name;  /* as received (may be compact); not NUL-terminated */
	size_t name_len;
	const char *value; /* trimmed, NUL-terminated */
	size_t value_len;
	sip_hdr_id_t id;
} sip_raw_hdr_t;

typedef struct sipmsg {
	osip_message_t *m;  /* owned */
	tp_peer_t src;      /* where it came from */
	bool is_request;
	const char *method; /* request method or CSeq method of a response */
	osip_via_t *via;    /* top Via (borrowed from m) */
	const char *branch; /* top Via branch or NULL */
	uint32_t cseq;
	/* Responses: the status code and reason phrase ("" when none;
	 * borrowed).  A response matched by sipmsg_scan_response has m ==
	 * NULL and only these, method, branch, cseq and src (see
	 * txn_client_match_raw). */
	int status;
	const char *reason;
	/* From and To exactly as received (unfolded, trimmed; owned): a
	 * response copies them byte for byte (RFC 3261 §8.2.6.2), which a
	 * re-serialisation of libosip2's unescaped URIs would not. */
	char *from_raw, *to_raw;
	bool raw_in_arena;  /* from_raw/to_raw point into arena (not freed alone) */
	/* Requests without folded lines: every header line as received, in
	 * order (values in arena, owned), so responses and forwarded
	 * requests are written from the bytes that came in rather than
	 * re-serialised by libosip2 (faster, and closer to RFC 3261 §8.2.6.2
	 * and §16.6, which ask for copies).  NULL when folded lines (or
	 * anything unusual) make the old path the safe one. */
	sip_raw_hdr_t *hdrs;
	size_t nhdrs;
	char *arena;
	/* The top Via value with received/rport as fixed (§18.2.1, RFC
	 * 3581) and what followed it on the same line (", next-via..." or
	 * ""); NULL when the top Via is written by libosip2. */
	char *top_via;
	const char *via_rest;
} sipmsg_t;

typedef struct sip_limits {
	size_t max_headers;   /* header lines per message */
	size_t max_body;      /* bytes of body */
} sip_limits_t;

/* Initialises libosip2's parser tables; call once. */
int sipmsg_global_init(void);

/* Parses one framed message.  data is modified in place (libosip2 needs
 * writable memory only for its own copy; we keep none).  On failure
 * returns a SIP status to answer with (400, 413, 416) and a reason phrase
 * in why, or -1 when the message cannot be answered at all.  On success
 * returns 0 and *out is a new message the caller owns. */
int sipmsg_parse(const char *data, size_t len, const tp_peer_t *src,
		 const sip_limits_t *lim, sipmsg_t **out, char *why, size_t whylen);
void sipmsg_free(sipmsg_t *msg);

/* First value of a header by full name, also matching the compact form
 * when one is given ("Event", "o"); NULL when absent.  Borrowed. */
const char *sipmsg_header(const sipmsg_t *msg, const char *name, const char *compact);
/* Number of instances of a header; nth value (0-based) or NULL. */
const char *sipmsg_header_nth(const sipmsg_t *msg, const char *name, const char *compact, int nth);

/* Parses a delta-seconds header (Expires, Min-Expires); -ENOENT when
 * absent, -EINVAL when malformed.  Values beyond 2^32-1 clamp. */
int sipmsg_header_uint(const sipmsg_t *msg, const char *name, uint32_t *out);

const char *sipmsg_from_tag(const sipmsg_t *msg);
const char *sipmsg_to_tag(const sipmsg_t *msg);
const char *sipmsg_call_id(const sipmsg_t *msg); /* "number[@host]" (owned by msg) */

/* Writes the address-of-record of a URI: "sip:user@host" with the host
 * lower-cased and no port, parameters or headers (RFC 3261 §10.3 step 5).
 * sips and sip map to sip.  Returns 0, -EINVAL (not a sip URI / no user)
 * or -ENOSPC. */
int sip_uri_aor(const osip_uri_t *uri, char *out, size_t outlen);

/* Appends a comma-separated token list header check: returns true when
 * every option of every Require header is in the supported list; else
 * writes the unsupported ones (comma-separated) into unsupported. */
bool sipmsg_require_ok(const sipmsg_t *msg, const char *const *supported,
		       char *unsupported, size_t len);

/* Whether an option-tag header (Supported "k", Require, ...; every
 * instance, comma-separated) names tag, case-insensitively. */
bool sipmsg_has_option_tag(const sipmsg_t *msg, const char *name, const char *compact,
			   const char *tag);

/* The fields that match a response to its client transaction (RFC 3261
 * §17.1.3) and tell its outcome, found by one bounded scan of the raw
 * bytes instead of a full parse.  Pointers borrow data. */
typedef struct sip_resp_view {
	int status;
	const char *reason;
	size_t reason_len;
	const char *branch; /* top Via branch */
	size_t branch_len;
	const char *method; /* CSeq method */
	size_t method_len;
	uint32_t cseq;
} sip_resp_view_t;

/* Scans a response in its plain shape: a status line, CRLF-ended header
 * lines without folding or control bytes, one top Via with a branch, one
 * CSeq below 2^31, From, To and Call-ID present, a Content-Length (if
 * any) not beyond what arrived, and the limits of lim.  Returns 0 and
 * fills out, or -EINVAL for anything else: the caller then parses the
 * message fully (sipmsg_parse decides what is wrong with it). */
int sipmsg_scan_response(const char *data, size_t len, const sip_limits_t *lim,
			 sip_resp_view_t *out);

/* The value of the first header with this id as received (NUL-terminated,
 * borrowed), or NULL when absent or when req has no raw index. */
const char *sipmsg_raw_value(const sipmsg_t *req, sip_hdr_id_t id);

/* Appends every Via of req as "Via: ...\r\n" lines in order, the top one
 * with received/rport (the Via lines of a response, §8.2.6.2, or those a
 * proxy keeps under its own, §16.6 step 8).  Returns 0 or out->err. */
int sipmsg_append_vias(const sipmsg_t *req, buf_t *out);

/* Builds a response to req.  to_tag is added to To when the request's To
 * has none (NULL = none added).  extra is zero or more complete header
 * lines each ending in CRLF (may be NULL).  body may be NULL.  Appends to
 * out; returns 0 or out->err. */
int sipmsg_build_response(const sipmsg_t *req, int code, const char *reason,
			  const char *to_tag, const char *extra,
			  const char *ctype, const char *body, size_t bodylen, buf_t *out);

/* Where a response to req goes (RFC 3261 §18.2.2, RFC 3581 §4). */
void sipmsg_response_dest(const sipmsg_t *req, tp_peer_t *dst);

/* Best-effort 400 for a message that libosip2 could not parse: copies the
 * Via, From, To, Call-ID and CSeq lines verbatim.  Returns 0 when a
 * response was built, -EINVAL when the message is not answerable (no Via,
 * or a response). */
int sipmsg_raw_error_response(const char *data, size_t len, int code, const char *reason,
			      buf_t *out);

/* Random token for tags and branches (hex, len chars, NUL-terminated). */
void sip_random_token(char *out, size_t len);

/* Standard reason phrase for a status code. */
const char *sip_reason_phrase(int code);

#endif
