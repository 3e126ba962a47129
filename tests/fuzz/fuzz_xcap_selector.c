/* libFuzzer target for presence/xcap_path.c (RFC 4825 §6 document URIs
 * and node selectors) and the engine of presence/xcap_node.c.
 *
 * Input: "QUERY\nSELECTOR" (no newline: the whole input is the selector).
 * The selector is parsed on its own, and as the node selector of a
 * document URI; when it parses, it is used to GET, PUT (an element and an
 * attribute body) and DELETE on a copy of a fixed resource-lists
 * document.  Invariants: parsing never reads past the input (it is
 * copied to a heap block of exactly its size plus the NUL), results are
 * 0 or -EINVAL (-ENOENT for URIs), outputs are NUL-terminated within
 * their bounds, and a successful PUT leaves the selector selecting a node
 * (the idempotency the engine promises). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pidf.h"
#include "presence/xcap_path.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define RL "urn:ietf:params:xml:ns:resource-lists"

static const char DOC[] =
	"<resource-lists xmlns=\"" RL "\" xmlns:x=\"urn:x\"><list name=\"a\">"
	"<entry uri=\"sip:b@c\"><display-name>B</display-name></entry><entry uri=\"sip:d@e\" x:t=\"1\"/>"
	"<list name=\"n\"/></list><list name=\"b\"/></resource-lists>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	if (!inited) {
		pidf_init();
		inited = 1;
	}
	if (size > 8192)
		return 0;
	char *in = malloc(size + 1);
	memcpy(in, data, size);
	in[size] = '\0';
	if (strlen(in) != size) {
		free(in);
		return 0;
	}
	char *nl = strchr(in, '\n');
	const char *query = NULL, *selector = in;
	if (nl) {
		*nl = '\0';
		query = in;
		selector = nl + 1;
	}
	char why[128];
	xcap_selector_t *sel = malloc(sizeof *sel);
	int rc = xcap_selector_parse(selector, query, RL, sel, why, sizeof why);
	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(memchr(why, '\0', sizeof why) || rc == 0);

	/* The same bytes as a path. */
	xcap_uri_t *uri = malloc(sizeof *uri);
	char path[9000];
	snprintf(path, sizeof path, "/xcap-root/resource-lists/users/sip:a@b/index/~~/%s", selector);
	int urc = xcap_uri_parse(path, uri, why, sizeof why);
	CHECK(urc == 0 || urc == -EINVAL || urc == -ENOENT);
	if (urc == 0)
		CHECK(strlen(uri->owner) < sizeof uri->owner && strlen(uri->node) < sizeof uri->node);
	urc = xcap_uri_parse(selector, uri, why, sizeof why);
	CHECK(urc == 0 || urc == -EINVAL || urc == -ENOENT);

	if (rc == 0) {
		CHECK(sel->n <= XCAP_MAX_STEPS);
		xmlDocPtr doc;
		CHECK(pidf_xml_parse(DOC, sizeof DOC - 1, NULL, &doc, why, sizeof why) == 0);
		char *out = NULL;
		size_t outlen = 0;
		if (xcap_get(doc, sel, &out, &outlen) == XCAP_OK) {
			CHECK(out && strlen(out) == outlen);
			free(out);
		}
		bool created;
		const char *body = sel->kind == XSEL_ATTRIBUTE ? "v&amp;1" : "<entry uri=\"sip:z@y\"/>";
		if (xcap_put(doc, sel, body, strlen(body), &created) == XCAP_OK)
			CHECK(xcap_select(doc, sel, sel->n) != NULL);
		xcap_result_t d = xcap_delete(doc, sel);
		if (d == XCAP_OK && sel->kind == XSEL_ELEMENT)
			CHECK(xcap_select(doc, sel, sel->n) == NULL);
		xmlFreeDoc(doc);
	}
	free(uri);
	free(sel);
	free(in);
	return 0;
}
