/* See slab.h. */
#include "presence/slab.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "server/base/log.h"
#include "server/sip/txn.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_USE_MALLOC 1
#endif
#endif

#define GRAIN 16
#define NCLASSES (SLAB_MAX / GRAIN)
#define BLOCK (256 * 1024)

typedef struct slot { struct slot *next; } slot_t;

static struct {
	slot_t *free[NCLASSES];
	/* the unused tail of the current block */
	char *cur, *end;
	size_t reserved;
} S;

size_t slab_reserved(void) { return S.reserved; }

#ifdef SLAB_USE_MALLOC

void *slab_alloc(size_t size) { return malloc(size ? size : 1); }
void slab_free(void *p, size_t size)
{
	(void)size;
	free(p);
}

#else

static size_t class_of(size_t size) { return (size + GRAIN - 1) / GRAIN - 1; }

void *slab_alloc(size_t size)
{
	if (size == 0)
		size = 1;
	if (size > SLAB_MAX)
		return malloc(size);
	size_t c = class_of(size), bytes = (c + 1) * GRAIN;
	slot_t *f = S.free[c];
	if (f) {
		S.free[c] = f->next;
		return f;
	}
	if ((size_t)(S.end - S.cur) < bytes) {
		/* The rest of the old block (< SLAB_MAX) is left unused: its
		 * pages were never touched unless it was handed out. */
		void *b = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED)
			return NULL;
		S.cur = b;
		S.end = S.cur + BLOCK;
		S.reserved += BLOCK;
	}
	void *p = S.cur;
	S.cur += bytes;
	return p;
}

void slab_free(void *p, size_t size)
{
	if (!p)
		return;
	if (size == 0)
		size = 1;
	if (size > SLAB_MAX) {
		free(p);
		return;
	}
	slot_t *f = p;
	size_t c = class_of(size);
	f->next = S.free[c];
	S.free[c] = f;
}

#endif

/* Trim when at least TRIM_MIN_DROP transactions ended since the peak and
 * fewer than a quarter of the peak remain, or when the last of at least
 * TRIM_TAIL ended: after a burst, not during steady load.  One call
 * costs 5-40 ms while 100,000 SUBSCRIBE transactions drain from a 180 MB
 * process (noisy, shared machine), little of it in proportion to what it
 * releases (it walks the free chunks): trimming at every quarter of the
 * peak (10 calls) cost as much per call as this rule's 3, so few calls. */
#define TRIM_MIN_DROP 1000
#define TRIM_TAIL 64

static unsigned long trim_peak;

bool heap_release_tick(void)
{
	txn_stats_t st;
	txn_get_stats(&st);
	unsigned long live = st.server_live + st.client_live;
	if (live > trim_peak)
		trim_peak = live;
	bool burst_over = trim_peak - live >= TRIM_MIN_DROP && live < trim_peak / 4;
	/* The tail of a burst, below TRIM_MIN_DROP after the last trim. */
	bool drained = live == 0 && trim_peak >= TRIM_TAIL;
	if (!burst_over && !drained)
		return false;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	malloc_trim(0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	LOGI("heap", "%lu transactions live (peak %lu): free heap pages released in %ld us", live,
	     trim_peak, (long)((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000));
	trim_peak = live;
	return true;
}
