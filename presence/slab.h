/* Private to presence/: a size-class allocator for objects that live as
 * long as a subscription (the packed ev_sub_t and the index entries).
 *
 * Why: those objects are allocated while a SUBSCRIBE's transaction, its
 * parsed message and its NOTIFY are allocated around them.  From the
 * general heap they end up scattered between the transient blocks, and
 * once the transactions are gone every live object pins the pages around
 * it: with malloc the resident set per subscription was about 2.5 times
 * its live heap.  Here they come from blocks of their own (mmap'ed, never
 * shared with transient data), so the resident set is the live objects
 * plus at most the free slots of their size classes.
 *
 * Freed slots go to a free list of their class and are reused by the
 * next object of that class; blocks are never returned (a server that
 * held N subscriptions once is sized for N again).  Sizes above
 * SLAB_MAX fall back to malloc.  Under AddressSanitizer everything goes
 * to malloc, so ASan still sees every overflow and use after free. */
#ifndef SD_SLAB_H
#define SD_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#define SLAB_MAX 1024

/* Returns size bytes aligned to 16, or NULL. */
void *slab_alloc(size_t size);
/* p came from slab_alloc(size) with the same size (or is NULL). */
void slab_free(void *p, size_t size);
/* Bytes held in blocks (for logs and tests). */
size_t slab_reserved(void);

/* Once a second (the event sweep): when the number of live transactions
 * has fallen well below its peak since the last call that trimmed, hands
 * the free pages of the general heap back (malloc_trim).  Why: a burst
 * of SUBSCRIBEs leaves the heap at its transient peak (transactions,
 * parsed messages, NOTIFYs); glibc returns only the top of the heap by
 * itself, and one small long-lived block above the freed space keeps all
 * of it resident.  Returns true when it trimmed. */
bool heap_release_tick(void);

#endif
