#include "server/base/htable.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int htable_init(htable_t *t, size_t initial)
{
	size_t n = 16;
	while (n < initial)
		n *= 2;
	t->buckets = calloc(n, sizeof *t->buckets);
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = n;
	t->count = 0;
	return 0;
}

void htable_destroy(htable_t *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = 0;
	t->count = 0;
}

static void grow(htable_t *t)
{
	size_t n = t->nbuckets * 2;
	hnode_t **nb = calloc(n, sizeof *nb);
	if (!nb)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < t->nbuckets; i++) {
		hnode_t *e = t->buckets[i];
		while (e) {
			hnode_t *next = e->next;
			size_t j = e->hash & (n - 1);
			e->next = nb[j];
			nb[j] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

void htable_insert(htable_t *t, hnode_t *node, uint64_t hash)
{
	if (t->count >= t->nbuckets)
		grow(t);
	node->hash = hash;
	size_t i = hash & (t->nbuckets - 1);
	node->next = t->buckets[i];
	t->buckets[i] = node;
	t->count++;
}

hnode_t *htable_find(const htable_t *t, uint64_t hash, htable_eq_cb eq, const void *key)
{
	if (!t->nbuckets)
		return NULL;
	for (hnode_t *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->next) {
		if (e->hash == hash && eq(e, key))
			return e;
	}
	return NULL;
}

void htable_remove(htable_t *t, hnode_t *node)
{
	hnode_t **pp = &t->buckets[node->hash & (t->nbuckets - 1)];
	while (*pp) {
		if (*pp == node) {
			*pp = node->next;
			node->next = NULL;
			t->count--;
			return;
		}
		pp = &(*pp)->next;
	}
}

void htable_foreach(htable_t *t, void (*fn)(hnode_t *node, void *arg), void *arg)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		hnode_t *e = t->buckets[i];
		while (e) {
			hnode_t *next = e->next;
			fn(e, arg);
			e = next;
		}
	}
}

hnode_t **htable_slice_collect(htable_t *t, size_t *cursor, size_t min_buckets,
			       bool (*pick)(hnode_t *node, void *arg), void *arg, size_t *n)
{
	hnode_t **out = NULL;
	size_t cap = 0;
	*n = 0;
	size_t nb = t->nbuckets;
	if (!nb)
		return NULL;
	size_t slice = nb / 4 > min_buckets ? nb / 4 : min_buckets;
	if (slice > nb)
		slice = nb;
	for (size_t i = 0; i < slice; i++) {
		for (hnode_t *e = t->buckets[(*cursor + i) % nb]; e; e = e->next) {
			if (!pick(e, arg))
				continue;
			if (*n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				hnode_t **p = realloc(out, nc * sizeof *p);
				if (!p)
					goto done; /* the rest waits for the next sweep */
				out = p;
				cap = nc;
			}
			out[(*n)++] = e;
		}
	}
done:
	*cursor = (*cursor + slice) % nb;
	return out;
}

uint64_t hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

uint64_t hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return hash_mix(h, len);
}

uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t n = 0;
	for (; *s; s++, n++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return hash_mix(h, n);
}

uint64_t hash_str_nocase(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t n = 0;
	for (; *s; s++, n++) {
		h ^= (unsigned char)tolower((unsigned char)*s);
		h *= 0x100000001b3ULL;
	}
	return hash_mix(h, n);
}
