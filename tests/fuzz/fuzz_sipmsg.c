/* libFuzzer target for SIP parsing as the server does it: the input is
 * one datagram (or one framed TCP message).  sipmsg_parse must either
 * return a message whose mandatory fields are set, a SIP status to
 * answer with, or -1; every answerable failure must produce a raw error
 * response that starts with a status line; a parsed request must yield
 * a response that re-parses as a response with the same CSeq.  The light
 * scan of responses (sipmsg_scan_response) must stay in bounds and, when
 * it and the full parse both accept a response, agree with it on status,
 * top Via branch, CSeq number and method. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/log.h"
#include "server/sip/sipmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	if (!inited) {
		sipmsg_global_init();
		log_set_level(LOG_ERROR);
		inited = 1;
	}
	if (size > 70000)
		return 0;
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';

	tp_peer_t peer;
	memset(&peer, 0, sizeof peer);
	peer.proto = TP_UDP;
	peer.listener = -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer.addr;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(5060);
	inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);

	static const sip_limits_t lim = {.max_headers = 256, .max_body = 65536};
	sipmsg_t *m = NULL;
	char why[128];
	int rc = sipmsg_parse(copy, size, &peer, &lim, &m, why, sizeof why);
	sip_resp_view_t v;
	if (sipmsg_scan_response(copy, size, &lim, &v) == 0) {
		if (v.status < 100 || v.status > 699 || !v.branch_len || !v.method_len)
			abort();
		if (rc == 0 && !m->is_request) {
			if (v.status != m->status || !m->branch || strlen(m->branch) != v.branch_len ||
			    memcmp(m->branch, v.branch, v.branch_len) != 0 || v.cseq != m->cseq ||
			    strlen(m->method) != v.method_len ||
			    memcmp(m->method, v.method, v.method_len) != 0) {
				fprintf(stderr, "scan/parse disagree: %d/%d branch '%.*s'/'%s' cseq %u/%u "
					"method '%.*s'/'%s'\n", v.status, m->status, (int)v.branch_len,
					v.branch, m->branch ? m->branch : "(none)", v.cseq, m->cseq,
					(int)v.method_len, v.method, m->method);
				abort();
			}
		}
	}
	buf_t b;
	buf_init(&b, 0);
	if (rc == 0) {
		if (!m || !m->via || !m->method || !m->m->call_id || !m->m->cseq)
			abort();
		if (m->is_request) {
			sipmsg_build_response(m, 400, NULL, "fuzz", "X-Fuzz: 1\r\n", NULL, NULL, 0, &b);
			if (b.err == 0) {
				sipmsg_t *r = NULL;
				int rc2 = sipmsg_parse(b.data, b.len, &peer, &lim, &r, why, sizeof why);
				/* Our own response must parse, unless the request's
				 * values were themselves beyond what we re-accept. */
				if (rc2 == 0) {
					if (r->is_request || r->cseq != m->cseq)
						abort();
					sipmsg_free(r);
				}
			}
			tp_peer_t dst;
			sipmsg_response_dest(m, &dst);
		}
		sipmsg_free(m);
	} else if (rc > 0) {
		if (sipmsg_raw_error_response(copy, size, rc, "Bad Request - fuzz", &b) == 0 &&
		    strncmp(buf_cstr(&b), "SIP/2.0 ", 8) != 0)
			abort();
	}
	buf_free(&b);
	free(copy);
	return 0;
}
