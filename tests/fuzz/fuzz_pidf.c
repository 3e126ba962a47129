/* libFuzzer target for presence/pidf: the safe parser, PIDF validation,
 * basic status, composition and the documents we write ourselves.  The
 * input is a body as a client could PUBLISH it.  Beyond "no crash, no
 * leak, no sanitizer report" it checks invariants that tie the pieces
 * together:
 *   - the parser answers only 0, -EINVAL, -E2BIG or -EMSGSIZE;
 *   - a document that validates composes (with itself, as two
 *     publications) into a document that parses and validates for the
 *     composed entity, keeps the basic status, and has at most one
 *     dm:person;
 *   - the entity comparison is reflexive;
 *   - pidf_basic_doc, given the input as entity and contact, either
 *     refuses it or writes a document that validates for that entity.
 *
 * Build by hand, e.g.:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/work/main \
 *     $(pkg-config --cflags libxml-2.0) tests/fuzz/fuzz_pidf.c \
 *     presence/pidf.c server/base/buf.c server/base/log.c \
 *     $(pkg-config --libs libxml-2.0) -o fuzz_pidf
 *   ./fuzz_pidf -max_len=65536 tests/fuzz/corpus/pidf/ */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pidf.h"
#include "server/base/log.h"

#define ENTITY "sip:fuzz@example.com"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_persons(xmlDocPtr doc)
{
	size_t n = 0;

	for (xmlNode *c = xmlDocGetRootElement(doc)->children; c; c = c->next)
		n += pidf_node_is(c, PIDF_DM_NS, "person");
	return n;
}

static void check_compose(const uint8_t *data, size_t size, int status)
{
	/* The composition may be larger than one input: serialisation can
	 * grow text up to four times ('>' -> "&gt;"), and it holds two
	 * copies. */
	pidf_limits_t big = { .max_size = 16u << 20, .max_elements = 100000 };
	pidf_source_t src[2] = {
		{ (const char *)data, size, 1, "a" },
		{ (const char *)data, size, 2, "b" },
	};
	xmlDocPtr out = NULL;
	char why[160];
	buf_t b;
	int rc;

	buf_init(&b, 0);
	rc = pidf_compose(ENTITY, src, 2, &b);
	if (rc == -ENOMEM)
		goto done;
	if (rc != 0)
		abort(); /* a valid source must be usable */
	if (pidf_xml_parse(b.data, b.len, &big, &out, why, sizeof why) != 0)
		abort();
	if (pidf_validate(out, ENTITY, why, sizeof why) != 0)
		abort();
	if (pidf_basic_status(out) != status)
		abort();
	if (count_persons(out) > 1)
		abort();
	xmlFreeDoc(out);
done:
	buf_free(&b);
}

static void check_basic_doc(const uint8_t *data, size_t size)
{
	pidf_limits_t big = { .max_size = 16u << 20 };
	char *s = malloc(size + 1);
	xmlDocPtr doc = NULL;
	char why[160];
	buf_t b;
	int rc;

	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (!pidf_entity_equal(s, s))
		abort();
	buf_init(&b, 0);
	rc = pidf_basic_doc(s, true, "t", s, &b);
	if (rc == 0) {
		/* Our own output must parse, whatever its size, and say what
		 * we wrote. */
		if (pidf_xml_parse(b.data, b.len, &big, &doc, why, sizeof why) != 0)
			abort();
		if (pidf_validate(doc, s, why, sizeof why) != 0)
			abort();
		if (pidf_basic_status(doc) != 1)
			abort();
		xmlFreeDoc(doc);
	} else if (rc != -EINVAL && rc != -ENOMEM) {
		abort();
	}
	buf_free(&b);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	xmlDocPtr doc = NULL;
	char why[160];
	int rc;

	if (!ready) {
		pidf_init();
		log_set_level(LOG_ERROR); /* skipped sources log warnings */
		ready = 1;
	}

	rc = pidf_xml_parse((const char *)data, size, NULL, &doc, why, sizeof why);
	if (rc != 0 && rc != -EINVAL && rc != -E2BIG && rc != -EMSGSIZE && rc != -ENOMEM)
		abort();
	if (rc != 0 && doc)
		abort();
	if (rc == 0) {
		int st;

		rc = pidf_validate(doc, NULL, why, sizeof why);
		if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
			abort();
		st = pidf_basic_status(doc);
		if (rc == 0) {
			xmlChar *entity = xmlGetNoNsProp(xmlDocGetRootElement(doc), BAD_CAST "entity");
			/* A document validates for its own entity. */
			if (entity && pidf_validate(doc, (const char *)entity, why, sizeof why) != 0)
				abort();
			if (entity && !pidf_entity_equal((const char *)entity, (const char *)entity))
				abort();
			xmlFree(entity);
			(void)pidf_validate(doc, ENTITY, why, sizeof why);
			check_compose(data, size, st);
		}
		xmlFreeDoc(doc);
	}

	check_basic_doc(data, size);
	return 0;
}
