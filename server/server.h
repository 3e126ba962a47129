/* The server: wires transport -> parser -> transactions -> router ->
 * handlers on one libuv loop, and runs the start-up and graceful shutdown
 * sequences. */
#ifndef SD_SERVER_H
#define SD_SERVER_H

#include <stdbool.h>

#include "server/config.h"

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int server_run(const config_t *cfg);

/* Whether host is one of the configured domains (case-insensitive). */
bool server_is_local_domain(const char *host);
/* Whether host:port names one of our listening addresses. */
bool server_is_local_address(const char *host);

#endif
