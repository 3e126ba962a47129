/* Unit tests for presence/pidf: the safe XML parser (size, depth and
 * element limits, DOCTYPE/entity rejection: XXE, billion laughs, errors
 * never on stderr), PIDF validation against the examples of RFC 3863
 * §3.4 / §6 and RFC 4480 §4, presentity URI comparison, composition of
 * several publications (RFC 4479 model: all tuples and devices, one
 * person, the newest; ids made unique; namespaces kept whatever the
 * prefixes) and the minimal documents the server writes itself. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "presence/pidf.h"
#include "server/base/log.h"

#define ENTITY "pres:someone@example.com"

/* RFC 3863 §3.4: the minimal example. */
static const char RFC3863_MIN[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
    "    entity=\"pres:someone@example.com\">\n"
    "  <tuple id=\"sg89ae\">\n"
    "    <status>\n"
    "      <basic>open</basic>\n"
    "    </status>\n"
    "    <contact priority=\"0.8\">tel:+09012345678</contact>\n"
    "  </tuple>\n"
    "</presence>\n";

/* RFC 3863 §6: prefixed PIDF namespace, an extension namespace, notes
 * with xml:lang. */
static const char RFC3863_FULL[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<impp:presence xmlns:impp=\"urn:ietf:params:xml:ns:pidf\"\n"
    "    xmlns:myex=\"http://id.example.com/presence/\"\n"
    "    entity=\"pres:someone@example.com\">\n"
    "  <impp:tuple id=\"ck38g9\">\n"
    "    <impp:status>\n"
    "      <impp:basic>open</impp:basic>\n"
    "    </impp:status>\n"
    "    <myex:mytupletag>Extended value in tuple</myex:mytupletag>\n"
    "    <impp:contact priority=\"0.65\">tel:+09012345678</impp:contact>\n"
    "  </impp:tuple>\n"
    "  <impp:tuple id=\"md6tcu\">\n"
    "    <impp:status>\n"
    "      <impp:basic>closed</impp:basic>\n"
    "    </impp:status>\n"
    "    <impp:contact priority=\"1.0\">im:someone@mobilecarrier.net</impp:contact>\n"
    "    <impp:note xml:lang=\"en\">Don't Disturb Please!</impp:note>\n"
    "    <impp:note xml:lang=\"fr\">Ne derangez pas, s'il vous plait</impp:note>\n"
    "    <impp:timestamp>2001-10-27T16:49:29Z</impp:timestamp>\n"
    "  </impp:tuple>\n"
    "  <impp:note xml:lang=\"en\">I'll be in Tokyo next week</impp:note>\n"
    "  <myex:mytag>My extended presentity information</myex:mytag>\n"
    "</impp:presence>\n";

/* RFC 4480 §4 (abridged): RPID and CIPID around the data model, with
 * prefix "r" for RPID. */
static const char RFC4480_EX[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
    "     xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
    "     xmlns:r=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
    "     xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\"\n"
    "     entity=\"pres:someone@example.com\">\n"
    "  <tuple id=\"bs35r9\">\n"
    "    <status><basic>open</basic></status>\n"
    "    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>\n"
    "    <r:relationship><r:self/></r:relationship>\n"
    "    <r:service-class><r:electronic/></r:service-class>\n"
    "    <contact priority=\"0.8\">im:someone@mobilecarrier.net</contact>\n"
    "    <note xml:lang=\"en\">Don't Disturb Please!</note>\n"
    "    <note xml:lang=\"fr\">Ne derangez pas, s'il vous plait</note>\n"
    "    <timestamp>2005-10-27T16:49:29Z</timestamp>\n"
    "  </tuple>\n"
    "  <tuple id=\"ty4658\">\n"
    "    <status><basic>open</basic></status>\n"
    "    <r:relationship><r:assistant/></r:relationship>\n"
    "    <c:card>http://example.com/~assistant/card.vcd</c:card>\n"
    "    <contact priority=\"1.0\">mailto:secretary@example.com</contact>\n"
    "  </tuple>\n"
    "  <note>I'll be in Tokyo next week</note>\n"
    "  <dm:device id=\"pc122\">\n"
    "    <r:user-input idle-threshold=\"600\"\n"
    "       last-input=\"2004-10-21T13:20:00-05:00\">idle</r:user-input>\n"
    "    <dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>\n"
    "    <dm:note>PC</dm:note>\n"
    "  </dm:device>\n"
    "  <dm:person id=\"p1\">\n"
    "    <r:activities from=\"2005-05-30T12:00:00+05:00\"\n"
    "        until=\"2005-05-30T17:00:00+05:00\">\n"
    "      <r:note>Far away</r:note>\n"
    "      <r:away/>\n"
    "    </r:activities>\n"
    "    <r:class>calendar</r:class>\n"
    "    <r:mood><r:angry/><r:other>brooding</r:other></r:mood>\n"
    "    <r:place-is><r:audio><r:noisy/></r:audio></r:place-is>\n"
    "    <r:place-type><r:residence/></r:place-type>\n"
    "    <r:privacy><r:unknown/></r:privacy>\n"
    "    <r:sphere>bowling league</r:sphere>\n"
    "    <r:time-offset>-240</r:time-offset>\n"
    "    <c:homepage>http://example.com/~someone</c:homepage>\n"
    "    <dm:note xml:lang=\"en\">Gone fishing</dm:note>\n"
    "    <dm:timestamp>2005-05-30T16:09:44+05:00</dm:timestamp>\n"
    "  </dm:person>\n"
    "</presence>\n";

/* ---- helpers -------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	pidf_init();
	pidf_set_default_limits(NULL);
	return 0;
}

static xmlDocPtr parse_ok(const char *s)
{
	xmlDocPtr doc = NULL;
	char why[160];
	int rc = pidf_xml_parse(s, strlen(s), NULL, &doc, why, sizeof why);

	if (rc != 0)
		print_error("parse failed: %d %s\n", rc, why);
	assert_int_equal(rc, 0);
	assert_non_null(doc);
	return doc;
}

static int parse_rc(const char *s, size_t len, const pidf_limits_t *lim, char *why, size_t wl)
{
	xmlDocPtr doc = (xmlDocPtr)(uintptr_t)1; /* must be reset to NULL */
	int rc = pidf_xml_parse(s, len, lim, &doc, why, wl);

	if (rc == 0)
		xmlFreeDoc(doc);
	else
		assert_null(doc);
	return rc;
}

static int validate_str(const char *s, const char *entity, char *why, size_t wl)
{
	xmlDocPtr doc = parse_ok(s);
	int rc = pidf_validate(doc, entity, why, wl);

	xmlFreeDoc(doc);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t count_top(xmlDocPtr doc, const char *ns, const char *local)
{
	size_t n = 0;

	for (xmlNode *c = xmlDocGetRootElement(doc)->children; c; c = c->next)
		n += pidf_node_is(c, ns, local);
	return n;
}

static xmlNode *find_top(xmlDocPtr doc, const char *ns, const char *local, size_t nth)
{
	for (xmlNode *c = xmlDocGetRootElement(doc)->children; c; c = c->next) {
		if (pidf_node_is(c, ns, local) && nth-- == 0)
			return c;
	}
	return NULL;
}

static xmlNode *find_child(const xmlNode *p, const char *ns, const char *local)
{
	for (xmlNode *c = p->children; c; c = c->next) {
		if (pidf_node_is(c, ns, local))
			return c;
	}
	return NULL;
}

/* Returns the id attribute as a static string (for asserts). */
static const char *id_of(xmlNode *n)
{
	static char buf[8][64];
	static int slot;
	xmlChar *v = xmlGetNoNsProp(n, BAD_CAST "id");
	char *b = buf[slot++ % 8];

	snprintf(b, 64, "%s", v ? (const char *)v : "");
	xmlFree(v);
	return b;
}

/* Redirects fd 2 into a temporary file; stderr_end returns how many bytes
 * were written there meanwhile. */
static int saved_fd = -1;
static FILE *cap;

static void stderr_begin(void)
{
	fflush(stderr);
	cap = tmpfile();
	assert_non_null(cap);
	saved_fd = dup(2);
	assert_true(saved_fd >= 0);
	assert_true(dup2(fileno(cap), 2) >= 0);
}

static long stderr_end(void)
{
	struct stat st;

	fflush(stderr);
	assert_true(dup2(saved_fd, 2) >= 0);
	close(saved_fd);
	assert_int_equal(fstat(fileno(cap), &st), 0);
	fclose(cap);
	return (long)st.st_size;
}

/* Composes sources and re-parses the result (generous limits). */
static xmlDocPtr compose_parse(const char *entity, const pidf_source_t *src, size_t n)
{
	buf_t out;
	xmlDocPtr doc = NULL;
	char why[160];
	pidf_limits_t big = { .max_size = 1 << 20, .max_elements = 100000 };

	buf_init(&out, 0);
	assert_int_equal(pidf_compose(entity, src, n, &out), 0);
	assert_true(out.len > 0);
	/* UTF-8 with an XML declaration. */
	assert_true(strncmp(buf_cstr(&out), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 38) == 0);
	if (pidf_xml_parse(out.data, out.len, &big, &doc, why, sizeof why) != 0)
		print_error("composed output does not parse: %s\n%s\n", why, buf_cstr(&out));
	assert_non_null(doc);
	assert_int_equal(pidf_validate(doc, entity, why, sizeof why), 0);
	buf_free(&out);
	return doc;
}

/* ---- parsing and validation ------------------------------------------------- */

static void test_rfc3863_examples(void **state)
{
	char why[160];
	xmlDocPtr doc;

	(void)state;
	assert_int_equal(validate_str(RFC3863_MIN, ENTITY, why, sizeof why), 0);
	assert_int_equal(validate_str(RFC3863_FULL, ENTITY, why, sizeof why), 0);
	/* A SIP client names the same presentity with its sip: URI. */
	assert_int_equal(validate_str(RFC3863_MIN, "sip:someone@example.com", why, sizeof why), 0);
	assert_int_equal(validate_str(RFC3863_MIN, "sip:someone@EXAMPLE.COM", why, sizeof why), 0);
	assert_int_equal(validate_str(RFC3863_MIN, NULL, why, sizeof why), 0);

	doc = parse_ok(RFC3863_MIN);
	assert_int_equal(pidf_basic_status(doc), 1);
	xmlFreeDoc(doc);
	doc = parse_ok(RFC3863_FULL);
	assert_int_equal(pidf_basic_status(doc), 1); /* one open, one closed */
	xmlFreeDoc(doc);
}

static void test_rfc4480_example(void **state)
{
	char why[160];
	xmlDocPtr doc;
	xmlNode *person, *act;

	(void)state;
	assert_int_equal(validate_str(RFC4480_EX, ENTITY, why, sizeof why), 0);
	doc = parse_ok(RFC4480_EX);
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 2);
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 1);
	assert_int_equal(count_top(doc, PIDF_DM_NS, "device"), 1);
	person = find_top(doc, PIDF_DM_NS, "person", 0);
	assert_string_equal(id_of(person), "p1");
	act = find_child(person, PIDF_RPID_NS, "activities");
	assert_non_null(act);
	assert_non_null(find_child(act, PIDF_RPID_NS, "away"));
	assert_int_equal(pidf_basic_status(doc), 1);
	xmlFreeDoc(doc);
}

static void test_prefixes(void **state)
{
	char why[160];
	/* The same document three ways: default namespace (above), prefix
	 * "pidf", prefix "x" with the data model as "p". */
	static const char pfx1[] =
	    "<pidf:presence xmlns:pidf=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:a@b.c\">"
	    "<pidf:tuple id=\"t\"><pidf:status><pidf:basic>closed</pidf:basic></pidf:status>"
	    "</pidf:tuple></pidf:presence>";
	static const char pfx2[] =
	    "<x:presence xmlns:x=\"urn:ietf:params:xml:ns:pidf\""
	    " xmlns:p=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"sip:a@b.c\">"
	    "<x:tuple id=\"t\"><x:status><x:basic> closed </x:basic></x:status></x:tuple>"
	    "<p:person id=\"p\"/></x:presence>";
	/* The right prefix bound to the wrong URI is not PIDF. */
	static const char lying[] =
	    "<pidf:presence xmlns:pidf=\"urn:example:not-pidf\" entity=\"sip:a@b.c\">"
	    "<pidf:tuple id=\"t\"><pidf:status/></pidf:tuple></pidf:presence>";
	xmlDocPtr doc;

	(void)state;
	assert_int_equal(validate_str(pfx1, "sip:a@b.c", why, sizeof why), 0);
	doc = parse_ok(pfx1);
	assert_int_equal(pidf_basic_status(doc), 0);
	xmlFreeDoc(doc);
	assert_int_equal(validate_str(pfx2, "sip:a@b.c", why, sizeof why), 0);
	assert_int_equal(validate_str(lying, "sip:a@b.c", why, sizeof why), -EINVAL);
}

static void test_wrong_root(void **state)
{
	char why[160];
	static const char *bad[] = {
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf:wrong\" entity=\"" ENTITY "\"/>",
		"<presence entity=\"" ENTITY "\"/>",
		"<presences xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\"/>",
		"<dm:person xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" id=\"p\"/>",
		/* entity missing or empty */
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"/>",
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"\"/>",
		/* entity in some namespace is not the entity attribute */
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:e=\"urn:e\" e:entity=\"" ENTITY "\"/>",
	};
	xmlDocPtr doc;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		assert_int_equal(validate_str(bad[i], ENTITY, why, sizeof why), -EINVAL);
		assert_true(why[0] != '\0');
	}
	doc = parse_ok(bad[0]);
	assert_int_equal(pidf_basic_status(doc), -EINVAL);
	xmlFreeDoc(doc);
	assert_int_equal(pidf_validate(NULL, ENTITY, why, sizeof why), -EINVAL);
}

static void test_entity_mismatch(void **state)
{
	char why[160];

	(void)state;
	assert_int_equal(validate_str(RFC3863_MIN, "sip:someoneelse@example.com", why, sizeof why),
			 -EPERM);
	assert_non_null(strstr(why, "entity"));
	assert_int_equal(validate_str(RFC3863_MIN, "sip:Someone@example.com", why, sizeof why), -EPERM);
	assert_int_equal(validate_str(RFC3863_MIN, "sip:someone@example.org", why, sizeof why), -EPERM);
	assert_int_equal(validate_str(RFC3863_MIN, "tel:+09012345678", why, sizeof why), -EPERM);
}

static void test_entity_equal(void **state)
{
	(void)state;
	assert_true(pidf_entity_equal("sip:alice@example.com", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("pres:alice@example.com", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("SIP:alice@Example.COM", "sips:alice@example.com"));
	assert_true(pidf_entity_equal(" sip:alice@example.com\n", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("sip:al%69ce@example.com", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("sip:alice@example.com;transport=tcp", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("sip:alice:secret@example.com", "sip:alice@example.com"));
	assert_true(pidf_entity_equal("sip:+1234;phone-context=x@example.com",
				      "sip:+1234;phone-context=x@example.com"));
	assert_true(pidf_entity_equal("sip:alice@[2001:DB8::1]:5070", "sip:alice@[2001:db8::1]:5070"));
	assert_true(pidf_entity_equal("sip:example.com", "pres:example.com"));
	assert_true(pidf_entity_equal("TEL:+123", "tel:+123"));

	assert_false(pidf_entity_equal("sip:Alice@example.com", "sip:alice@example.com"));
	assert_false(pidf_entity_equal("sip:alice@example.com:5060", "sip:alice@example.com"));
	assert_false(pidf_entity_equal("sip:alice@example.com", "sip:alice@example.com.evil"));
	assert_false(pidf_entity_equal("sip:alice@example.com", "sip:bob@example.com"));
	assert_false(pidf_entity_equal("sip:example.com", "sip:alice@example.com"));
	assert_false(pidf_entity_equal("sip:alice@example.com", "mailto:alice@example.com"));
	assert_false(pidf_entity_equal("tel:+123", "tel:+124"));
	assert_true(pidf_entity_equal("sip:alice@", "sip:alice@")); /* unparsable: exact */
	assert_false(pidf_entity_equal("sip:alice@", "sip:alice@x"));
	assert_false(pidf_entity_equal("", "sip:alice@example.com"));
	assert_false(pidf_entity_equal(NULL, "sip:alice@example.com"));
}

static void test_tuple_rules(void **state)
{
	char why[160];
#define DOC(body) \
	"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\">" body "</presence>"
	static const char *bad[] = {
		DOC("<tuple><status><basic>open</basic></status></tuple>"),
		DOC("<tuple id=\"\"><status><basic>open</basic></status></tuple>"),
		DOC("<tuple id=\"a\"/>"),
		DOC("<tuple id=\"a\"><status/><status/></tuple>"),
		DOC("<tuple id=\"a\"><status><basic>busy</basic></status></tuple>"),
		DOC("<tuple id=\"a\"><status><basic>open</basic><basic>open</basic></status></tuple>"),
		DOC("<tuple id=\"a\"><status/></tuple><tuple id=\"a\"><status/></tuple>"),
		DOC("<tuple id=\"a\"><x:status xmlns:x=\"urn:x\"/></tuple>"),
		DOC("<d:device xmlns:d=\"urn:ietf:params:xml:ns:pidf:data-model\"/>"),
		/* ids are unique across tuple, person and device (all xs:ID) */
		DOC("<tuple id=\"a\"><status/></tuple>"
		    "<d:person xmlns:d=\"urn:ietf:params:xml:ns:pidf:data-model\" id=\"a\"/>"),
	};
	static const char *good[] = {
		DOC(""),
		DOC("<tuple id=\"a\"><status/></tuple><tuple id=\"b\"><status/></tuple>"),
		DOC("<tuple id=\"a\"><status><basic>\n closed\n</basic></status></tuple>"),
		DOC("<note>just a note</note>"),
	};
#undef DOC
	xmlDocPtr doc;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(validate_str(bad[i], ENTITY, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "twice"));
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(validate_str(good[i], ENTITY, why, sizeof why), 0);
	/* No basic anywhere: -ENOENT. */
	doc = parse_ok(good[1]);
	assert_int_equal(pidf_basic_status(doc), -ENOENT);
	xmlFreeDoc(doc);
	doc = parse_ok(good[0]);
	assert_int_equal(pidf_basic_status(doc), -ENOENT);
	xmlFreeDoc(doc);
	doc = parse_ok(good[2]);
	assert_int_equal(pidf_basic_status(doc), 0);
	xmlFreeDoc(doc);
}

static void test_not_well_formed(void **state)
{
	char why[160];
	static const char *bad[] = {
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\">",
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"></presense>",
		"<a><b></a></b>",
		"<a x=\"1\" x=\"2\"/>",
		"<p:a/>",
		"not xml at all",
		"<a/><b/>",
		"<a>&nbsp;</a>",
		"<a>\x01</a>",
		"\xff\xfe<\x00",
		"<?xml version=\"1.0\" encoding=\"no-such-encoding\"?><a/>",
	};
	long err_bytes;

	(void)state;
	stderr_begin();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = strlen(bad[i]);
		if (i == 9)
			len = 4;
		why[0] = '\0';
		assert_int_equal(parse_rc(bad[i], len, NULL, why, sizeof why), -EINVAL);
		assert_true(why[0] != '\0');
		for (const char *p = why; *p; p++)
			assert_true((unsigned char)*p >= 0x20); /* fit for a reason phrase */
	}
	assert_int_equal(parse_rc("", 0, NULL, why, sizeof why), -EINVAL);
	assert_int_equal(parse_rc(NULL, 10, NULL, why, sizeof why), -EINVAL);
	/* A short why buffer is truncated, not overrun; none at all is fine. */
	assert_int_equal(parse_rc(bad[0], strlen(bad[0]), NULL, why, 4), -EINVAL);
	assert_int_equal(strlen(why), 3);
	assert_int_equal(parse_rc(bad[0], strlen(bad[0]), NULL, NULL, 0), -EINVAL);
	err_bytes = stderr_end();
	/* libxml2 wrote nothing on stderr. */
	assert_int_equal(err_bytes, 0);

	parse_rc(bad[2], strlen(bad[2]), NULL, why, sizeof why);
	assert_non_null(strstr(why, "line 1"));
}

static void test_xxe(void **state)
{
	char why[160];
	static const char *bad[] = {
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\">"
		"<note>&xxe;</note></presence>",
		/* external DTD */
		"<!DOCTYPE presence SYSTEM \"file:///etc/passwd\">\n"
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\"/>",
		/* parameter entity */
		"<!DOCTYPE x [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>\n"
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\"/>",
		/* network */
		"<!DOCTYPE x [<!ENTITY n SYSTEM \"http://127.0.0.1:9/x\">]><x>&n;</x>",
		/* a bare DOCTYPE is refused too */
		"<!DOCTYPE presence><presence/>",
		/* an entity with no declaration at all */
		"<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\">"
		"<note>&xxe;</note></presence>",
	};

	(void)state;
	stderr_begin();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		xmlDocPtr doc = NULL;
		int rc = pidf_xml_parse(bad[i], strlen(bad[i]), NULL, &doc, why, sizeof why);

		assert_int_equal(rc, -EINVAL);
		assert_null(doc);
		assert_null(strstr(why, "root:"));
		if (i < 5)
			assert_non_null(strstr(why, "DOCTYPE"));
	}
	assert_int_equal(stderr_end(), 0);
}

static void test_billion_laughs(void **state)
{
	static const char lol[] =
	    "<?xml version=\"1.0\"?>\n"
	    "<!DOCTYPE lolz [\n"
	    " <!ENTITY lol \"lol\">\n"
	    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
	    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
	    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
	    " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
	    " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
	    " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
	    " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
	    " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
	    " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
	    "]>\n"
	    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"" ENTITY "\">"
	    "<note>&lol9;</note></presence>";
	char why[160];
	double t0 = now_s();

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(parse_rc(lol, sizeof lol - 1, NULL, why, sizeof why), -EINVAL);
	/* A thousand rejections in well under a second (generous for ASan). */
	assert_true(now_s() - t0 < 2.0);
	assert_non_null(strstr(why, "DOCTYPE"));
}

static char *nested(size_t depth, size_t *len)
{
	/* "<a>" * depth + "</a>" * depth */
	size_t n = depth * 7;
	char *s = malloc(n + 1);

	assert_non_null(s);
	for (size_t i = 0; i < depth; i++)
		memcpy(s + i * 3, "<a>", 3);
	for (size_t i = 0; i < depth; i++)
		memcpy(s + depth * 3 + i * 4, "</a>", 4);
	s[n] = '\0';
	*len = n;
	return s;
}

static void test_deep_nesting(void **state)
{
	size_t len;
	char *s = nested(100000, &len);
	char why[160];
	pidf_limits_t big = { .max_size = 8u << 20 };
	pidf_limits_t huge = { .max_size = 8u << 20, .max_depth = 1000000, .max_elements = 1000000 };
	double t0;

	(void)state;
	/* 700 kB: the size check comes first. */
	assert_int_equal(parse_rc(s, len, NULL, why, sizeof why), -EMSGSIZE);

	/* Past the size check, the depth limit stops it at level 33. */
	t0 = now_s();
	assert_int_equal(parse_rc(s, len, &big, why, sizeof why), -E2BIG);
	assert_true(now_s() - t0 < 1.0);
	assert_non_null(strstr(why, "deep"));

	/* Even with our limits lifted, libxml2's own cap (256 levels
	 * without XML_PARSE_HUGE) rejects it: no stack overflow, no hang. */
	t0 = now_s();
	stderr_begin();
	assert_int_equal(parse_rc(s, len, &huge, why, sizeof why), -EINVAL);
	assert_int_equal(stderr_end(), 0);
	assert_true(now_s() - t0 < 2.0);
	free(s);

	/* Exactly at the limit is fine, one more is not. */
	s = nested(32, &len);
	assert_int_equal(parse_rc(s, len, NULL, why, sizeof why), 0);
	free(s);
	s = nested(33, &len);
	assert_int_equal(parse_rc(s, len, NULL, why, sizeof why), -E2BIG);
	free(s);
}

static void test_element_count(void **state)
{
	buf_t b;
	char why[160];
	pidf_limits_t lim = { .max_elements = 10 };

	(void)state;
	buf_init(&b, 0);
	buf_puts(&b, "<r>");
	for (int i = 0; i < 1999; i++)
		buf_puts(&b, "<e/>");
	buf_puts(&b, "</r>");
	assert_int_equal(b.err, 0);
	/* root + 1999 = 2000: allowed. */
	assert_int_equal(parse_rc(b.data, b.len, NULL, why, sizeof why), 0);
	buf_reset(&b);
	buf_puts(&b, "<r>");
	for (int i = 0; i < 2000; i++)
		buf_puts(&b, "<e/>");
	buf_puts(&b, "</r>");
	assert_int_equal(parse_rc(b.data, b.len, NULL, why, sizeof why), -E2BIG);
	assert_non_null(strstr(why, "many"));
	/* A per-call limit. */
	assert_int_equal(parse_rc(RFC3863_MIN, strlen(RFC3863_MIN), &lim, why, sizeof why), 0);
	assert_int_equal(parse_rc(RFC4480_EX, strlen(RFC4480_EX), &lim, why, sizeof why), -E2BIG);
	buf_free(&b);
}

static void test_size_limit(void **state)
{
	size_t big = 5u * 1024 * 1024;
	char *s = malloc(big);
	char why[160];
	pidf_limits_t lim, tiny = { .max_size = 100 };
	buf_t b;

	(void)state;
	assert_non_null(s);
	memset(s, ' ', big);
	memcpy(s, "<a>", 3);
	memcpy(s + big - 4, "</a>", 4);
	assert_int_equal(parse_rc(s, big, NULL, why, sizeof why), -EMSGSIZE);
	assert_non_null(strstr(why, "65536"));
	free(s);

	/* Exactly max_size bytes pass the size check. */
	buf_init(&b, 0);
	buf_puts(&b, "<a>");
	while (b.len < PIDF_DEFAULT_MAX_SIZE - 4)
		buf_puts(&b, " ");
	buf_puts(&b, "</a>");
	assert_int_equal(b.len, PIDF_DEFAULT_MAX_SIZE);
	assert_int_equal(parse_rc(b.data, b.len, NULL, why, sizeof why), 0);
	assert_int_equal(parse_rc(b.data, b.len, &tiny, why, sizeof why), -EMSGSIZE);

	/* Process defaults: a smaller default applies to NULL limits. */
	pidf_set_default_limits(&tiny);
	pidf_get_default_limits(&lim);
	assert_int_equal(lim.max_size, 100);
	assert_int_equal(lim.max_depth, PIDF_DEFAULT_MAX_DEPTH);
	assert_int_equal(parse_rc(b.data, b.len, NULL, why, sizeof why), -EMSGSIZE);
	pidf_set_default_limits(NULL);
	assert_int_equal(parse_rc(b.data, b.len, NULL, why, sizeof why), 0);
	buf_free(&b);
}

/* ---- composition -------------------------------------------------------------- */

/* Older publication: a phone, with a person "away" and a device. */
static const char SRC_A[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
    "    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
    "    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
    "    entity=\"sip:alice@example.com\" xml:lang=\"en\">\n"
    "  <tuple id=\"t1\"><status><basic>closed</basic></status>\n"
    "    <contact>sip:alice@192.0.2.1</contact></tuple>\n"
    "  <note>from A</note>\n"
    "  <dm:person id=\"pa\"><rpid:activities><rpid:away/></rpid:activities></dm:person>\n"
    "  <dm:device id=\"d1\"><dm:deviceID>urn:device:a</dm:deviceID></dm:device>\n"
    "</presence>\n";

/* Newer publication: every element under other prefixes, the same tuple
 * id, a person "on the phone", a device with capabilities. */
static const char SRC_B[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<p:presence xmlns:p=\"urn:ietf:params:xml:ns:pidf\"\n"
    "    xmlns:m=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
    "    xmlns:r=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
    "    xmlns:c=\"urn:ietf:params:xml:ns:pidf:caps\"\n"
    "    entity=\"pres:alice@example.com\">\n"
    "  <p:tuple id=\"t1\"><p:status><p:basic>open</p:basic></p:status>\n"
    "    <c:servcaps><c:audio>true</c:audio></c:servcaps>\n"
    "    <p:contact>sip:alice@192.0.2.2</p:contact></p:tuple>\n"
    "  <p:note xml:lang=\"en\">from A</p:note>\n"
    "  <p:note>from B</p:note>\n"
    "  <m:person id=\"pb\"><r:activities><r:on-the-phone/></r:activities></m:person>\n"
    "  <m:device id=\"d1\"><c:devcaps><c:mobility><c:supported><c:mobile/></c:supported>"
    "</c:mobility></c:devcaps><m:deviceID>urn:device:b</m:deviceID></m:device>\n"
    "</p:presence>\n";

/* Newest publication, without a person; its tuple reuses "t1" and a
 * tuple declares prefix "dm" for some other namespace. */
static const char SRC_C[] =
    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.com\">"
    "<tuple id=\"t1\" xmlns:dm=\"urn:example:not-the-data-model\">"
    "<status><basic>closed</basic></status><dm:thing>x</dm:thing></tuple>"
    "<tuple id=\"t1-2\"><status><basic>closed</basic></status></tuple>"
    "</presence>";

static void test_compose_two(void **state)
{
	pidf_source_t src[2] = {
		{ SRC_A, sizeof SRC_A - 1, 100, "etag-a" },
		{ SRC_B, sizeof SRC_B - 1, 200, "etag-b" },
	};
	xmlDocPtr doc;
	xmlNode *n, *act, *caps, *root;
	xmlChar *entity;

	(void)state;
	doc = compose_parse("sip:alice@example.com", src, 2);
	root = xmlDocGetRootElement(doc);
	entity = xmlGetNoNsProp(root, BAD_CAST "entity");
	assert_string_equal((const char *)entity, "sip:alice@example.com");
	xmlFree(entity);

	/* Both tuples; the second "t1" was renamed. */
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 2);
	assert_string_equal(id_of(find_top(doc, PIDF_NS, "tuple", 0)), "t1");
	assert_string_equal(id_of(find_top(doc, PIDF_NS, "tuple", 1)), "t1-2");
	/* Caps survived inside B's tuple. */
	n = find_top(doc, PIDF_NS, "tuple", 1);
	caps = find_child(n, PIDF_CAPS_NS, "servcaps");
	assert_non_null(caps);
	assert_non_null(find_child(caps, PIDF_CAPS_NS, "audio"));
	assert_int_equal(pidf_basic_status(doc), 1);

	/* Exactly one person: B's, the newest. */
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 1);
	n = find_top(doc, PIDF_DM_NS, "person", 0);
	assert_string_equal(id_of(n), "pb");
	act = find_child(n, PIDF_RPID_NS, "activities");
	assert_non_null(act);
	assert_non_null(find_child(act, PIDF_RPID_NS, "on-the-phone"));
	assert_null(find_child(act, PIDF_RPID_NS, "away"));

	/* Both devices, ids unique, namespaces intact. */
	assert_int_equal(count_top(doc, PIDF_DM_NS, "device"), 2);
	assert_string_equal(id_of(find_top(doc, PIDF_DM_NS, "device", 0)), "d1");
	assert_string_equal(id_of(find_top(doc, PIDF_DM_NS, "device", 1)), "d1-2");
	n = find_top(doc, PIDF_DM_NS, "device", 1);
	assert_non_null(find_child(n, PIDF_CAPS_NS, "devcaps"));
	assert_non_null(find_child(n, PIDF_DM_NS, "deviceID"));

	/* Notes: "from A" once, "from B"; A's inherited xml:lang kept. */
	assert_int_equal(count_top(doc, PIDF_NS, "note"), 2);
	{
		xmlChar *lang = xmlNodeGetLang(find_top(doc, PIDF_NS, "note", 0));
		assert_non_null(lang);
		assert_string_equal((const char *)lang, "en");
		xmlFree(lang);
	}
	/* Schema order: tuples, notes, then person and devices. */
	{
		int phase = 0;
		for (n = root->children; n; n = n->next) {
			int p = pidf_node_is(n, PIDF_NS, "tuple")  ? 0
				: pidf_node_is(n, PIDF_NS, "note") ? 1
				: n->type == XML_ELEMENT_NODE      ? 2
								   : phase;
			assert_true(p >= phase);
			phase = p;
		}
	}
	xmlFreeDoc(doc);

	/* With B older than A, A's person wins. */
	src[1].modified = 50;
	doc = compose_parse("sip:alice@example.com", src, 2);
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 1);
	assert_string_equal(id_of(find_top(doc, PIDF_DM_NS, "person", 0)), "pa");
	xmlFreeDoc(doc);

	/* A tie goes to the later source. */
	src[1].modified = 100;
	doc = compose_parse("sip:alice@example.com", src, 2);
	assert_string_equal(id_of(find_top(doc, PIDF_DM_NS, "person", 0)), "pb");
	xmlFreeDoc(doc);
}

static void test_compose_three(void **state)
{
	pidf_source_t src[3] = {
		{ SRC_A, sizeof SRC_A - 1, 100, "a" },
		{ SRC_B, sizeof SRC_B - 1, 200, "b" },
		{ SRC_C, sizeof SRC_C - 1, 300, "c" },
	};
	static const char *want[] = { "t1", "t1-2", "t1-3", "t1-2-2" };
	xmlDocPtr doc;
	xmlNode *n, *thing;

	(void)state;
	doc = compose_parse("sip:alice@example.com", src, 3);
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(id_of(find_top(doc, PIDF_NS, "tuple", i)), want[i]);
	/* C is newest but has no person: B's person. */
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 1);
	assert_string_equal(id_of(find_top(doc, PIDF_DM_NS, "person", 0)), "pb");
	/* C's private "dm" prefix still means its own namespace. */
	n = find_top(doc, PIDF_NS, "tuple", 2);
	thing = find_child(n, "urn:example:not-the-data-model", "thing");
	assert_non_null(thing);
	assert_null(find_child(n, PIDF_DM_NS, "thing"));
	/* ... while the devices' dm still is the data model. */
	assert_int_equal(count_top(doc, PIDF_DM_NS, "device"), 2);
	xmlFreeDoc(doc);
}

/* Namespaces a source declares below the copied element stay in force:
 * an inner xmlns:dm1 must not capture a reference re-homed to the root
 * (what xmlReconciliateNs on the output root would do), and xmlns=""
 * keeps an element out of any namespace. */
static void test_compose_ns_shadowing(void **state)
{
	static const char s1[] =
	    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='sip:a@b'>"
	    "<tuple id='t' xmlns:dm='urn:other'><status/>"
	    "<x xmlns:dm1='urn:third'><dm:thing/><dm1:other/></x>"
	    "<plain xmlns=''><deeper/></plain></tuple></presence>";
	pidf_source_t src = { s1, sizeof s1 - 1, 1, "s" };
	xmlDocPtr doc;
	xmlNode *t, *x, *plain;

	(void)state;
	doc = compose_parse("sip:a@b", &src, 1);
	t = find_top(doc, PIDF_NS, "tuple", 0);
	assert_non_null(t);
	x = find_child(t, "urn:other", "x");
	assert_null(x); /* x itself is in the PIDF namespace */
	x = find_child(t, PIDF_NS, "x");
	assert_non_null(x);
	assert_non_null(find_child(x, "urn:other", "thing"));
	assert_non_null(find_child(x, "urn:third", "other"));
	plain = find_child(t, NULL, "plain");
	assert_non_null(plain);
	assert_non_null(find_child(plain, NULL, "deeper"));
	xmlFreeDoc(doc);
}

static void test_compose_single_and_rfc(void **state)
{
	pidf_source_t one = { RFC4480_EX, sizeof RFC4480_EX - 1, 1, "x" };
	pidf_source_t full = { RFC3863_FULL, sizeof RFC3863_FULL - 1, 1, "y" };
	xmlDocPtr doc;
	xmlNode *t;

	(void)state;
	doc = compose_parse(ENTITY, &one, 1);
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 2);
	assert_int_equal(count_top(doc, PIDF_NS, "note"), 1);
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 1);
	assert_int_equal(count_top(doc, PIDF_DM_NS, "device"), 1);
	t = find_top(doc, PIDF_NS, "tuple", 1);
	assert_non_null(find_child(t, "urn:ietf:params:xml:ns:pidf:cipid", "card"));
	t = find_top(doc, PIDF_NS, "tuple", 0);
	assert_non_null(find_child(t, PIDF_DM_NS, "deviceID"));
	assert_non_null(find_child(t, PIDF_RPID_NS, "relationship"));
	xmlFreeDoc(doc);

	/* RFC 3863 §6: extension elements inside tuples survive; the
	 * presence-level extension (myex:mytag) is not carried over. */
	doc = compose_parse(ENTITY, &full, 1);
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 2);
	t = find_top(doc, PIDF_NS, "tuple", 0);
	assert_non_null(find_child(t, "http://id.example.com/presence/", "mytupletag"));
	assert_int_equal(count_top(doc, "http://id.example.com/presence/", "mytag"), 0);
	assert_int_equal(pidf_basic_status(doc), 1);
	xmlFreeDoc(doc);
}

static void test_compose_errors(void **state)
{
	static const char junk[] = "<presence><oops></presence>";
	static const char xxe[] = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
	pidf_source_t src[3] = {
		{ junk, sizeof junk - 1, 5, "junk" },
		{ RFC3863_MIN, sizeof RFC3863_MIN - 1, 1, "ok" },
		{ xxe, sizeof xxe - 1, 9, NULL },
	};
	buf_t out;
	xmlDocPtr doc;
	enum log_level lvl = log_get_level();

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(pidf_compose(ENTITY, src, 0, &out), -EINVAL);
	assert_int_equal(pidf_compose(NULL, src, 1, &out), -EINVAL);
	assert_int_equal(pidf_compose(ENTITY, NULL, 1, &out), -EINVAL);
	assert_int_equal(pidf_compose(ENTITY, src, 1, NULL), -EINVAL);
	assert_int_equal(pidf_compose("", &src[1], 1, &out), -EINVAL);
	assert_int_equal(pidf_compose("sip:\xff@example.com", &src[1], 1, &out), -EINVAL);
	log_set_level(LOG_ERROR); /* the skipped sources are logged as warnings */
	/* Only unusable sources. */
	assert_int_equal(pidf_compose(ENTITY, src, 1, &out), -EINVAL);
	assert_int_equal(pidf_compose(ENTITY, &src[2], 1, &out), -EINVAL);
	assert_int_equal(out.len, 0);
	/* The good one survives the bad ones. */
	doc = compose_parse(ENTITY, src, 3);
	log_set_level(lvl);
	assert_int_equal(count_top(doc, PIDF_NS, "tuple"), 1);
	assert_string_equal(id_of(find_top(doc, PIDF_NS, "tuple", 0)), "sg89ae");
	assert_int_equal(count_top(doc, PIDF_DM_NS, "person"), 0);
	xmlFreeDoc(doc);

	/* The output buffer's limit is honoured. */
	buf_free(&out);
	buf_init(&out, 64);
	assert_int_equal(pidf_compose(ENTITY, &src[1], 1, &out), -EMSGSIZE);
	buf_free(&out);
}

/* ---- documents the server writes --------------------------------------------- */

static void test_basic_doc(void **state)
{
	static const char nasty[] = "sip:a<b&c\"d'e>f@example.com";
	buf_t out;
	xmlDocPtr doc;
	xmlNode *root, *t, *c;
	xmlChar *v;
	char why[160];

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(pidf_basic_doc("sip:alice@example.com", true, "reg1", "sip:alice@192.0.2.1:5060",
					&out),
			 0);
	doc = parse_ok(buf_cstr(&out));
	assert_int_equal(pidf_validate(doc, "sip:alice@example.com", why, sizeof why), 0);
	assert_int_equal(pidf_basic_status(doc), 1);
	t = find_top(doc, PIDF_NS, "tuple", 0);
	assert_string_equal(id_of(t), "reg1");
	c = find_child(t, PIDF_NS, "contact");
	v = xmlNodeGetContent(c);
	assert_string_equal((const char *)v, "sip:alice@192.0.2.1:5060");
	xmlFree(v);
	xmlFreeDoc(doc);

	/* Closed, no contact, and an entity that needs escaping. */
	buf_reset(&out);
	assert_int_equal(pidf_basic_doc(nasty, false, "t", NULL, &out), 0);
	assert_null(strstr(buf_cstr(&out), "a<b"));
	doc = parse_ok(buf_cstr(&out));
	assert_int_equal(pidf_validate(doc, nasty, why, sizeof why), 0);
	assert_int_equal(pidf_basic_status(doc), 0);
	root = xmlDocGetRootElement(doc);
	v = xmlGetNoNsProp(root, BAD_CAST "entity");
	assert_string_equal((const char *)v, nasty);
	xmlFree(v);
	assert_null(find_child(find_top(doc, PIDF_NS, "tuple", 0), PIDF_NS, "contact"));
	xmlFreeDoc(doc);

	/* White space and markup survive in attribute and text. */
	buf_reset(&out);
	assert_int_equal(pidf_basic_doc("sip:x\ty\nz\r@h", true, "t", "<&>\r\n\"]]>", &out), 0);
	doc = parse_ok(buf_cstr(&out));
	root = xmlDocGetRootElement(doc);
	v = xmlGetNoNsProp(root, BAD_CAST "entity");
	assert_string_equal((const char *)v, "sip:x\ty\nz\r@h");
	xmlFree(v);
	v = xmlNodeGetContent(find_child(find_top(doc, PIDF_NS, "tuple", 0), PIDF_NS, "contact"));
	assert_string_equal((const char *)v, "<&>\r\n\"]]>");
	xmlFree(v);
	xmlFreeDoc(doc);

	/* UTF-8 passes; what XML cannot carry does not. */
	buf_reset(&out);
	assert_int_equal(pidf_basic_doc("sip:j\xc3\xbcrgen@example.com", true, "t", NULL, &out), 0);
	assert_int_equal(pidf_basic_doc("sip:a\x01@example.com", true, "t", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a\xc3@example.com", true, "t", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a\xc0\xaf@example.com", true, "t", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a\xed\xa0\x80@example.com", true, "t", NULL, &out),
			 -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a@example.com", true, "t", "\x1b", &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a@example.com", true, "1abc", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a@example.com", true, "a\"b", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("sip:a@example.com", true, NULL, NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc("", true, "t", NULL, &out), -EINVAL);
	assert_int_equal(pidf_basic_doc(NULL, true, "t", NULL, &out), -EINVAL);

	/* A full buffer reports its error. */
	buf_free(&out);
	buf_init(&out, 32);
	assert_int_equal(pidf_basic_doc("sip:a@example.com", true, "t", NULL, &out), -EMSGSIZE);
	buf_free(&out);
}

static void test_serialize_and_node_is(void **state)
{
	xmlDocPtr doc = parse_ok(RFC3863_FULL);
	buf_t out;
	xmlNode *root = xmlDocGetRootElement(doc);

	(void)state;
	assert_true(pidf_node_is(root, PIDF_NS, "presence"));
	assert_false(pidf_node_is(root, PIDF_NS, "tuple"));
	assert_false(pidf_node_is(root, NULL, "presence"));
	assert_false(pidf_node_is(NULL, PIDF_NS, "presence"));
	buf_init(&out, 0);
	assert_int_equal(pidf_serialize(doc, &out), 0);
	assert_non_null(strstr(buf_cstr(&out), "encoding=\"UTF-8\""));
	assert_non_null(strstr(buf_cstr(&out), "Tokyo"));
	assert_int_equal(pidf_serialize(NULL, &out), -EINVAL);
	buf_free(&out);
	xmlFreeDoc(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3863_examples),
		cmocka_unit_test(test_rfc4480_example),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_wrong_root),
		cmocka_unit_test(test_entity_mismatch),
		cmocka_unit_test(test_entity_equal),
		cmocka_unit_test(test_tuple_rules),
		cmocka_unit_test(test_not_well_formed),
		cmocka_unit_test(test_xxe),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_element_count),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_compose_two),
		cmocka_unit_test(test_compose_three),
		cmocka_unit_test(test_compose_ns_shadowing),
		cmocka_unit_test(test_compose_single_and_rfc),
		cmocka_unit_test(test_compose_errors),
		cmocka_unit_test(test_basic_doc),
		cmocka_unit_test(test_serialize_and_node_is),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
