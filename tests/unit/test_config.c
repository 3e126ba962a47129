/* Unit tests of the configuration table: defaults, file parsing, command
 * line overrides, bounds, lists and the generated example file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/simpled-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_defaults(void **state)
{
	(void)state;
	config_t c;
	config_defaults(&c);
	assert_int_equal(c.nonce_ttl, 300);
	assert_int_equal(c.max_message_size, 65536);
	assert_true(c.auth);
	assert_int_equal(c.listen.n, 2);
	assert_string_equal(c.listen.items[0], "udp:0.0.0.0:5060");
	assert_string_equal(c.domain.items[0], "localhost");
	assert_string_equal(c.db, "");
	config_free(&c);
}

static void test_set_and_bounds(void **state)
{
	(void)state;
	config_t c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_set(&c, "nonce-ttl", "5", err, sizeof err), 0);
	assert_int_equal(c.nonce_ttl, 5);
	assert_int_equal(config_set(&c, "nonce_ttl", "0", err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "nonce_ttl"));
	assert_int_equal(config_set(&c, "nonce_ttl", "12abc", err, sizeof err), -EINVAL);
	assert_int_equal(config_set(&c, "nonce_ttl", "99999999999999999999", err, sizeof err), -EINVAL);
	assert_int_equal(c.nonce_ttl, 5);
	assert_int_equal(config_set(&c, "auth", "off", err, sizeof err), 0);
	assert_false(c.auth);
	assert_int_equal(config_set(&c, "auth", "maybe", err, sizeof err), -EINVAL);
	assert_int_equal(config_set(&c, "no_such_option", "1", err, sizeof err), -ENOENT);
	config_free(&c);
}

static void test_list_replaces_default(void **state)
{
	(void)state;
	config_t c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_set(&c, "listen", "udp:127.0.0.1:5070", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "listen", "tcp:[::1]:5070", err, sizeof err), 0);
	assert_int_equal(c.listen.n, 2);
	assert_string_equal(c.listen.items[0], "udp:127.0.0.1:5070");
	assert_string_equal(c.listen.items[1], "tcp:[::1]:5070");
	for (int i = 0; i < CFG_MAX_LIST; i++)
		assert_int_equal(config_set(&c, "domain", "d.test", err, sizeof err), 0);
	assert_int_equal(c.domain.n, CFG_MAX_LIST);
	assert_int_equal(config_set(&c, "domain", "one-too-many.test", err, sizeof err), -EINVAL);
	config_free(&c);
}

static void test_file(void **state)
{
	(void)state;
	char *path = write_tmp("# comment\n\n"
			       "domain = example.test\n"
			       "  min_expires=30  \n"
			       "db = \"host=/tmp dbname=x\"\n"
			       "auth = off\n");
	config_t c;
	char err[256];
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_string_equal(c.domain.items[0], "example.test");
	assert_int_equal(c.domain.n, 1);
	assert_int_equal(c.min_expires, 30);
	assert_string_equal(c.db, "host=/tmp dbname=x");
	assert_false(c.auth);
	config_free(&c);
	unlink(path);
	free(path);

	path = write_tmp("domain = a.test\nbogus line\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, ":2:"));
	config_free(&c);
	unlink(path);
	free(path);

	config_defaults(&c);
	assert_true(config_load_file(&c, "/nonexistent/simpled.conf", err, sizeof err) < 0);
	config_free(&c);
}

/* The example file generated from the table must load back unchanged:
 * every line is a commented default. */
static void test_example_roundtrip(void **state)
{
	(void)state;
	char *path = strdup("/tmp/simpled-example-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	config_print_example(f);
	fclose(f);
	/* Uncomment every "#name = value" line. */
	f = fopen(path, "r");
	char line[1024], *uncommented = calloc(1, 65536);
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' && line[1] != ' ' && line[1] != '\n' && strchr(line, '='))
			strcat(uncommented, line + 1);
	}
	fclose(f);
	unlink(path);
	free(path);
	char *p2 = write_tmp(uncommented);
	config_t a, b;
	char err[256];
	config_defaults(&a);
	config_defaults(&b);
	assert_int_equal(config_load_file(&b, p2, err, sizeof err), 0);
	assert_int_equal(a.nonce_ttl, b.nonce_ttl);
	assert_int_equal(a.listen.n, b.listen.n);
	assert_int_equal(a.max_headers, b.max_headers);
	assert_int_equal(a.auth, b.auth);
	config_free(&a);
	config_free(&b);
	unlink(p2);
	free(p2);
	free(uncommented);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_and_bounds),
		cmocka_unit_test(test_list_replaces_default),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_example_roundtrip),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
