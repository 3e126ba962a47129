/* Configuration: one table of options (name, type, default, bounds,
 * description), read from simpled.conf ("name = value" lines), then
 * overridden by command-line "--name value" (dashes or underscores).
 * Every option has a default; `simpled --print-config` writes the fully
 * commented example file from the same table, so docs never drift. */
#ifndef SD_CONFIG_H
#define SD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_MAX_LIST 16

typedef struct cfg_list {
	char *items[CFG_MAX_LIST];
	size_t n;
	bool from_user; /* set explicitly: replaces the default list */
} cfg_list_t;

typedef struct config {
	cfg_list_t listen;      /* "udp:ADDR:PORT", "tcp:[::]:5060" */
	cfg_list_t domain;      /* domains we are registrar/presence server for */
	char *db;               /* libpq conninfo */
	int db_pool_size;
	int db_max_queue;
	char *schema_dir;
	bool auth;
	char *log_level;
	int nonce_ttl;
	char *nonce_secret;
	int min_expires, max_expires, default_expires;
	int max_contacts;
	int max_message_size;
	int max_headers;
	int max_body_size;
	int max_tcp_connections;
	int max_tcp_connections_per_ip;
	int tcp_idle_timeout;
	int tcp_header_timeout;
	int timer_t1_ms, timer_t2_ms, timer_t4_ms;
	int user_cache_ttl;
	int retry_after;
	int max_requests_per_ip;
	int max_subscriptions_per_watcher;
	int max_publications_per_presentity;
	char *presence_default_policy;
	int notify_interval_ms;
	bool redirect;
	bool dialog_tracking;
	int cc_queue_expires;
	char *node_name;
	char *xcap_listen; /* ADDR:PORT of the XCAP (HTTP) server, or "off" */
} config_t;

/* Fills every field with its default. */
void config_defaults(config_t *c);
void config_free(config_t *c);

/* Sets one option by name (underscores or dashes).  Returns 0, -ENOENT
 * (unknown option) or -EINVAL (bad value / out of bounds), with a message
 * in err. */
int config_set(config_t *c, const char *name, const char *value, char *err, size_t errlen);

/* Reads a config file.  Returns 0 or -errno with "file:line: message". */
int config_load_file(config_t *c, const char *path, char *err, size_t errlen);

/* Writes the commented example configuration with every option. */
void config_print_example(FILE *out);
/* Writes the effective configuration (secrets masked). */
void config_print_effective(const config_t *c, FILE *out);

/* Whether an option of that name exists and takes a value. */
bool config_has_option(const char *name);

#endif
