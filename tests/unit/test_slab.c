/* Unit tests of presence/slab.c: the size-class allocator of subscription
 * objects (slab.h).  Under AddressSanitizer the allocator is malloc, so
 * the reuse checks apply to the ordinary build only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "presence/slab.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_IS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_IS_MALLOC 1
#endif
#endif

static void aligned_distinct_writable(void **state)
{
	(void)state;
	enum { N = 5000 };
	static char *p[N];
	for (int i = 0; i < N; i++) {
		size_t size = 1 + (size_t)(i * 37) % SLAB_MAX;
		p[i] = slab_alloc(size);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		memset(p[i], i & 0xff, size);
	}
	/* Nothing overlapped: every object still holds its own bytes. */
	for (int i = 0; i < N; i++) {
		size_t size = 1 + (size_t)(i * 37) % SLAB_MAX;
		for (size_t k = 0; k < size; k++)
			assert_int_equal((unsigned char)p[i][k], i & 0xff);
		slab_free(p[i], size);
	}
}

static void reuse_within_class(void **state)
{
	(void)state;
	char *a = slab_alloc(100);
	assert_non_null(a);
	slab_free(a, 100);
	char *b = slab_alloc(97); /* same 16-byte class as 100 */
	assert_non_null(b);
#ifndef SLAB_IS_MALLOC
	assert_ptr_equal(a, b);
#endif
	slab_free(b, 97);
}

static void large_and_zero(void **state)
{
	(void)state;
	char *big = slab_alloc(SLAB_MAX + 1);
	assert_non_null(big);
	memset(big, 1, SLAB_MAX + 1);
	slab_free(big, SLAB_MAX + 1);
	char *z = slab_alloc(0);
	assert_non_null(z);
	slab_free(z, 0);
	slab_free(NULL, 10);
#ifndef SLAB_IS_MALLOC
	assert_true(slab_reserved() > 0);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(aligned_distinct_writable),
		cmocka_unit_test(reuse_within_class),
		cmocka_unit_test(large_and_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
