/* Token bucket per source IP.  Each address may send rate requests per
 * second with bursts of twice that; beyond it requests are dropped
 * without an answer (an answer would make us an amplifier for spoofed
 * floods).  The table is bounded: past MAX_SOURCES addresses, entries not
 * seen for a minute are swept, and if that frees nothing the table
 * starts over (every source gets a fresh bucket, which errs on the side
 * of serving). */
#include "server/ratelimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/htable.h"
#include "server/base/log.h"

#define MAX_SOURCES 100000
#define IDLE_MS 60000

typedef struct bucket {
	hnode_t node;
	uint8_t key[17]; /* family + 16 bytes of address */
	double tokens;
	uint64_t last_ms;
	uint64_t dropped;
} bucket_t;

static struct {
	unsigned rate;
	htable_t table;
	uint64_t last_log_ms;
	uint64_t dropped_since_log;
} RL;

static void make_key(const struct sockaddr_storage *a, uint8_t key[17])
{
	memset(key, 0, 17);
	key[0] = (uint8_t)a->ss_family;
	if (a->ss_family == AF_INET)
		memcpy(key + 1, &((const struct sockaddr_in *)a)->sin_addr, 4);
	else if (a->ss_family == AF_INET6)
		memcpy(key + 1, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
}

static bool key_eq(const hnode_t *n, const void *key)
{
	return memcmp(container_of(n, bucket_t, node)->key, key, 17) == 0;
}

static void free_node(hnode_t *n, void *arg)
{
	(void)arg;
	free(container_of(n, bucket_t, node));
}

struct sweep_ctx {
	uint64_t now;
};

static void sweep_node(hnode_t *n, void *arg)
{
	struct sweep_ctx *c = arg;
	bucket_t *b = container_of(n, bucket_t, node);
	if (c->now - b->last_ms > IDLE_MS) {
		htable_remove(&RL.table, n);
		free(b);
	}
}

int ratelimit_init(unsigned rate)
{
	memset(&RL, 0, sizeof RL);
	RL.rate = rate;
	return rate ? htable_init(&RL.table, 1024) : 0;
}

void ratelimit_shutdown(void)
{
	if (!RL.rate)
		return;
	htable_foreach(&RL.table, free_node, NULL);
	htable_destroy(&RL.table);
	RL.rate = 0;
}

bool ratelimit_allow(const struct sockaddr_storage *addr, uint64_t now_ms)
{
	if (!RL.rate)
		return true;
	uint8_t key[17];
	make_key(addr, key);
	uint64_t h = hash_bytes(key, sizeof key);
	hnode_t *n = htable_find(&RL.table, h, key_eq, key);
	bucket_t *b;
	if (n) {
		b = container_of(n, bucket_t, node);
	} else {
		if (RL.table.count >= MAX_SOURCES) {
			struct sweep_ctx c = {now_ms};
			htable_foreach(&RL.table, sweep_node, &c);
			if (RL.table.count >= MAX_SOURCES) {
				LOGW("ratelimit", "more than %d sources: starting the table over", MAX_SOURCES);
				htable_foreach(&RL.table, free_node, NULL);
				htable_destroy(&RL.table);
				if (htable_init(&RL.table, 1024) != 0)
					return true;
			}
		}
		b = calloc(1, sizeof *b);
		if (!b)
			return true;
		memcpy(b->key, key, sizeof key);
		b->tokens = 2.0 * RL.rate;
		b->last_ms = now_ms;
		htable_insert(&RL.table, &b->node, h);
	}
	double burst = 2.0 * RL.rate;
	b->tokens += (double)(now_ms - b->last_ms) * RL.rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	b->dropped++;
	RL.dropped_since_log++;
	/* One line per second at most, however hard the flood. */
	if (now_ms - RL.last_log_ms >= 1000) {
		LOGW("ratelimit", "over %u requests/s from one source: dropped %llu request(s) in the last second(s)",
		     RL.rate, (unsigned long long)RL.dropped_since_log);
		RL.last_log_ms = now_ms;
		RL.dropped_since_log = 0;
	}
	return false;
}
