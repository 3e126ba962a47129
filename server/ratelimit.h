/* Per-source request rate limiting (token bucket per IP address). */
#ifndef SD_RATELIMIT_H
#define SD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* rate_per_s 0 disables limiting. */
int ratelimit_init(unsigned rate_per_s);
void ratelimit_shutdown(void);
/* Whether one more request from addr (its IP; the port is ignored) is
 * within the limit at time now_ms.  Counts the request. */
bool ratelimit_allow(const struct sockaddr_storage *addr, uint64_t now_ms);

#endif
