/* Originating requests (NOTIFY, MESSAGE relay and delivery) as non-INVITE
 * client transactions (RFC 3261 §8.1, §16.6 for the proxy-forward case).
 *
 * uac_send() builds the request text from its parts -- our Via on top
 * (sent-by = the listener the request leaves from, RFC 3261 §18.1.1),
 * a fresh branch, Max-Forwards, Content-Length -- and starts
 * txn_client_start() with it.  The same builder serves a proxy forward:
 * `vias_below` carries the Via lines of the original request, placed
 * under ours in order (§16.6 step 8).
 *
 * uac_binding_dest() picks where a request to a registered contact goes
 * (see the comment there for why the REGISTER's source is preferred). */
#ifndef SD_UAC_H
#define SD_UAC_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/buf.h"
#include "server/sip/txn.h"
#include "server/transport/tp.h"

typedef struct uac_request {
	const char *method;     /* "MESSAGE", "NOTIFY" ... (never INVITE) */
	const char *ruri;       /* Request-URI */
	const char *from;       /* From value, with its tag: "<sip:a@x>;tag=1" */
	const char *to;         /* To value */
	const char *call_id;
	uint32_t cseq;
	const char *route;      /* Route value(s), comma-separated, or NULL */
	const char *contact;    /* Contact value or NULL */
	const char *vias_below; /* complete "Via: ...\r\n" lines to put under ours, or NULL */
	int max_forwards;       /* < 0: 70 */
	const char *extra;      /* complete header lines, each ending in CRLF, or NULL */
	const char *ctype;      /* Content-Type, or NULL (no body) */
	const char *body;       /* may contain any bytes; bodylen counts them */
	size_t bodylen;
	/* The callback reads only the scanned fields of a response (status,
	 * reason: TXN_LIGHT_RESPONSE), so answers skip the full parse. */
	bool light_response;
} uac_request_t;

/* Writes "ADDR:PORT" (IPv6 in brackets) and the transport token ("UDP",
 * "TCP") of the address we send from to dst: the listener dst names, else
 * the first listener of dst's transport and family; a wildcard listener
 * (0.0.0.0, ::) is replaced by the address the kernel picks for dst (a
 * connect()ed UDP socket, cached per family for the last destination).
 * Returns 0, -ENETUNREACH (no listener for that transport and family) or
 * -ENOSPC. */
int uac_via_sent_by(const tp_peer_t *dst, char *hostport, size_t len, const char **transport);

/* Appends the request text to out, with branch in our Via.  Returns 0 or
 * a negative errno (out->err, -ENETUNREACH). */
int uac_build(const uac_request_t *r, const tp_peer_t *dst, const char *branch, buf_t *out);

/* Builds the request (new branch) and starts a client transaction to dst.
 * Returns 0 -- cb runs exactly once, later, with the final response or
 * 408/503 (txn.h) -- or a negative errno, and cb never runs.  Borrows r. */
int uac_send(const uac_request_t *r, const tp_peer_t *dst, txn_response_cb cb, void *arg);

/* Where a request to a registered contact goes.
 *
 *   source   where the REGISTER came from (loc_binding_t.source)
 *   contact  the registered Contact URI
 *
 * 1. The binding came over TCP and that connection is still open: that
 *    connection (RFC 5626 §5.3 style flow reuse; a client behind NAT or a
 *    firewall cannot accept a new connection, and its Contact port may
 *    not even be listening).
 * 2. UDP: the REGISTER's source address and port, not the Contact's host
 *    and port.  Behind NAT the Contact names a private address; the
 *    source is the public mapping that the REGISTER refreshes (what
 *    Kamailio's nathelper fix_nated_contact achieves by rewriting the
 *    Contact).  Without NAT both are the same anyway.
 * 3. TCP whose connection is gone: a new connection to the Contact's host
 *    and port (numeric hosts only, default 5060) -- the REGISTER's source
 *    port of a closed connection is an ephemeral port nobody listens on.
 * 4. No usable source (a binding loaded without one): the Contact's
 *    numeric host and port, transport from its transport parameter.
 *
 * Returns 0 or -EHOSTUNREACH (nothing numeric to send to). */
int uac_binding_dest(const tp_peer_t *source, const char *contact, tp_peer_t *out);

/* Parses the numeric host, port and transport parameter of a SIP URI
 * ("sip:u@1.2.3.4:5070;transport=tcp", "sip:[::1]"); 0 or -EINVAL. */
int uac_uri_dest(const char *uri, tp_peer_t *out);

#endif
