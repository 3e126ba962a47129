/* Intrusive chained hash table.  Objects embed an hnode_t and are found by
 * a 64-bit hash plus a caller-supplied equality test, so one table type
 * serves transactions (by branch), connections (by id), AORs (by name)...
 * Lookup, insert and remove are O(1) on average; the table doubles when
 * its load passes 1, so the cost per message does not grow with the number
 * of entries.  The table never owns the objects. */
#ifndef SD_HTABLE_H
#define SD_HTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hnode {
	struct hnode *next;
	uint64_t hash;
} hnode_t;

typedef struct htable {
	hnode_t **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
} htable_t;

/* Returns true when the node matches the key passed to htable_find. */
typedef bool (*htable_eq_cb)(const hnode_t *node, const void *key);

int htable_init(htable_t *t, size_t initial_buckets);
void htable_destroy(htable_t *t); /* frees buckets only */
void htable_insert(htable_t *t, hnode_t *node, uint64_t hash);
hnode_t *htable_find(const htable_t *t, uint64_t hash, htable_eq_cb eq, const void *key);
void htable_remove(htable_t *t, hnode_t *node);

/* Calls fn for every node; fn may remove the node it is given (the next
 * pointer is read before the call). */
void htable_foreach(htable_t *t, void (*fn)(hnode_t *node, void *arg), void *arg);

/* Bounded sweeps (expiry timers): walks the next slice of buckets — a
 * quarter of the table, at least min_buckets — from *cursor, advances
 * the cursor, and returns a new array (free() it; NULL when none) of the
 * nodes for which pick returned true, their number in *n.  pick must not
 * change the table; act on the returned nodes afterwards. */
hnode_t **htable_slice_collect(htable_t *t, size_t *cursor, size_t min_buckets,
			       bool (*pick)(hnode_t *node, void *arg), void *arg, size_t *n);

/* FNV-1a with a final mix; case-insensitive variant for SIP tokens. */
uint64_t hash_bytes(const void *data, size_t len);
uint64_t hash_str(const char *s);
uint64_t hash_str_nocase(const char *s);
uint64_t hash_mix(uint64_t h, uint64_t v);

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
