/* Table-driven configuration (see config.h). */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum cfg_type { CFG_INT, CFG_BOOL, CFG_STR, CFG_LIST };

struct cfg_option {
	const char *name;
	enum cfg_type type;
	size_t offset;
	const char *def; /* default as text; lists use '|' between items */
	long min, max;
	bool secret;
	const char *help;
};

#define OPT(n, t, d, lo, hi, h) {#n, t, offsetof(config_t, n), d, lo, hi, false, h}

static const struct cfg_option options[] = {
	OPT(listen, CFG_LIST, "udp:0.0.0.0:5060|tcp:0.0.0.0:5060", 0, 0,
	    "Listening sockets, repeat the option for several: udp:ADDR:PORT or tcp:ADDR:PORT; IPv6 as udp:[::]:5060."),
	OPT(domain, CFG_LIST, "localhost", 0, 0,
	    "Domains this server is registrar and presence server for (also the digest realm). Repeat for several."),
	OPT(db, CFG_STR, "", 0, 0,
	    "PostgreSQL connection string (libpq conninfo). Required; scripts/run.sh provides a private cluster when empty."),
	OPT(db_pool_size, CFG_INT, "4", 1, 64, "Number of database connections."),
	OPT(db_max_queue, CFG_INT, "20000", 16, 10000000,
	    "Queries allowed to wait for a connection before requests get 503."),
	OPT(schema_dir, CFG_STR, SIMPLED_SCHEMA_DIR, 0, 0, "Directory with the numbered SQL migrations."),
	OPT(auth, CFG_BOOL, "on", 0, 1,
	    "Digest authentication of local users. off accepts anyone (closed networks, benchmarks)."),
	OPT(log_level, CFG_STR, "info", 0, 0, "error, warn, info or debug."),
	OPT(nonce_ttl, CFG_INT, "300", 1, 86400,
	    "Seconds a digest nonce stays valid; older ones are answered with stale=true."),
	{"nonce_secret", CFG_STR, offsetof(config_t, nonce_secret), "", 0, 0, true,
	 "Secret for stateless nonces; give all nodes of a cluster the same one. Empty = random at start."},
	OPT(min_expires, CFG_INT, "60", 1, 86400,
	    "Shortest registration/subscription interval accepted (shorter gets 423 with Min-Expires)."),
	OPT(max_expires, CFG_INT, "3600", 1, 31536000, "Longest interval granted; longer requests are capped."),
	OPT(default_expires, CFG_INT, "3600", 1, 31536000, "Interval used when a REGISTER names none."),
	OPT(max_contacts, CFG_INT, "10", 1, 1000, "Bindings one address-of-record may hold."),
	OPT(max_message_size, CFG_INT, "65536", 1024, 16777216,
	    "Largest SIP message (headers and body) accepted on any transport."),
	OPT(max_headers, CFG_INT, "256", 16, 100000, "Most header lines in one message."),
	OPT(max_body_size, CFG_INT, "65536", 0, 16777216, "Largest message body (413 beyond)."),
	OPT(max_tcp_connections, CFG_INT, "4096", 1, 1000000, "Open TCP connections in total."),
	OPT(max_tcp_connections_per_ip, CFG_INT, "64", 1, 1000000, "Open TCP connections per source address."),
	OPT(tcp_idle_timeout, CFG_INT, "600", 1, 86400, "Seconds before an idle TCP connection is closed."),
	OPT(tcp_header_timeout, CFG_INT, "10", 1, 3600,
	    "Seconds a TCP connection may take to complete a message it started (anti-slowloris)."),
	OPT(timer_t1_ms, CFG_INT, "500", 10, 60000, "RFC 3261 T1 (round-trip estimate), milliseconds."),
	OPT(timer_t2_ms, CFG_INT, "4000", 10, 600000, "RFC 3261 T2 (largest retransmit interval), milliseconds."),
	OPT(timer_t4_ms, CFG_INT, "5000", 10, 600000, "RFC 3261 T4 (message lifetime in the network), milliseconds."),
	OPT(user_cache_ttl, CFG_INT, "30", 0, 86400,
	    "Seconds credentials stay cached in memory; simplectl changes are applied at once through LISTEN/NOTIFY."),
	OPT(max_requests_per_ip, CFG_INT, "2000", 0, 10000000,
	    "Requests per second accepted from one source address (bursts up to twice that); more are dropped silently, like Kamailio's pike. 0 = no limit (benchmarks)."),
	OPT(max_subscriptions_per_watcher, CFG_INT, "200", 1, 1000000, "Subscriptions one watcher may hold (more get 403)."),
	OPT(max_publications_per_presentity, CFG_INT, "16", 1, 10000,
	    "Publications (devices) one presentity may hold per event package (more get 403)."),
	OPT(presence_default_policy, CFG_STR, "allow", 0, 0,
	    "What watchers no presence rule names get: allow, or pending (the presentity must approve)."),
	OPT(notify_interval_ms, CFG_INT, "0", 0, 3600000,
	    "Least milliseconds between two NOTIFYs of one subscription (0: at most one per loop turn)."),
	OPT(retry_after, CFG_INT, "5", 1, 3600, "Retry-After seconds sent with 503 when the database is unavailable."),
	OPT(redirect, CFG_BOOL, "off", 0, 1,
	    "Redirect server mode: an INVITE to a local user is answered 302 with its contacts instead of being proxied."),
	OPT(dialog_tracking, CFG_BOOL, "on", 0, 1,
	    "Keep dialog records of the calls routed for local users (the dialog event package and call completion need them; off only for benchmarks)."),
	OPT(cc_queue_expires, CFG_INT, "3600", 60, 86400,
	    "Seconds a call-completion request (RFC 6910) stays queued at most, whatever the subscription asks."),
	OPT(node_name, CFG_STR, "", 0, 0, "Name of this node in a cluster (default: the host name)."),
	OPT(xcap_listen, CFG_STR, "127.0.0.1:8080", 0, 0,
	    "XCAP (HTTP) server address, ADDR:PORT or [V6]:PORT; off disables it. Bind it publicly only when asked."),
};

#define NOPTIONS (sizeof options / sizeof options[0])

static const struct cfg_option *find_option(const char *name)
{
	char norm[64];
	size_t i = 0;
	for (; name[i] && i < sizeof norm - 1; i++)
		norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
	norm[i] = '\0';
	for (size_t k = 0; k < NOPTIONS; k++) {
		if (strcmp(options[k].name, norm) == 0)
			return &options[k];
	}
	return NULL;
}

bool config_has_option(const char *name) { return find_option(name) != NULL; }

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "off") || !strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static void list_clear(cfg_list_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	l->n = 0;
}

static int apply(config_t *c, const struct cfg_option *o, const char *value, bool is_default,
		 char *err, size_t errlen)
{
	void *field = (char *)c + o->offset;
	switch (o->type) {
	case CFG_INT: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < o->min || v > o->max) {
			snprintf(err, errlen, "%s: expected an integer from %ld to %ld, got '%s'",
				 o->name, o->min, o->max, value);
			return -EINVAL;
		}
		*(int *)field = (int)v;
		return 0;
	}
	case CFG_BOOL:
		if (parse_bool(value, (bool *)field) != 0) {
			snprintf(err, errlen, "%s: expected on or off, got '%s'", o->name, value);
			return -EINVAL;
		}
		return 0;
	case CFG_STR: {
		char *dup = strdup(value);
		if (!dup)
			return -ENOMEM;
		free(*(char **)field);
		*(char **)field = dup;
		return 0;
	}
	case CFG_LIST: {
		cfg_list_t *l = field;
		if (!is_default && !l->from_user) {
			list_clear(l);
			l->from_user = true;
		}
		if (l->n >= CFG_MAX_LIST) {
			snprintf(err, errlen, "%s: at most %d values", o->name, CFG_MAX_LIST);
			return -EINVAL;
		}
		l->items[l->n] = strdup(value);
		if (!l->items[l->n])
			return -ENOMEM;
		l->n++;
		return 0;
	}
	}
	return -EINVAL;
}

void config_defaults(config_t *c)
{
	char err[256];
	memset(c, 0, sizeof *c);
	for (size_t k = 0; k < NOPTIONS; k++) {
		const struct cfg_option *o = &options[k];
		if (o->type == CFG_LIST) {
			char tmp[512];
			snprintf(tmp, sizeof tmp, "%s", o->def);
			char *save = NULL;
			for (char *tok = strtok_r(tmp, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
				apply(c, o, tok, true, err, sizeof err);
		} else {
			apply(c, o, o->def, true, err, sizeof err);
		}
	}
	if (!c->node_name || !*c->node_name) {
		char host[256];
		if (gethostname(host, sizeof host) == 0) {
			host[sizeof host - 1] = '\0';
			free(c->node_name);
			c->node_name = strdup(host);
		}
	}
}

void config_free(config_t *c)
{
	for (size_t k = 0; k < NOPTIONS; k++) {
		void *field = (char *)c + options[k].offset;
		if (options[k].type == CFG_STR) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (options[k].type == CFG_LIST) {
			list_clear(field);
		}
	}
}

int config_set(config_t *c, const char *name, const char *value, char *err, size_t errlen)
{
	const struct cfg_option *o = find_option(name);
	if (!o) {
		snprintf(err, errlen, "unknown option '%s'", name);
		return -ENOENT;
	}
	return apply(c, o, value, false, err, errlen);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_load_file(config_t *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		char *name = trim(s), *value = trim(eq + 1);
		/* Values may be quoted to keep spaces (conninfo strings). */
		size_t vl = strlen(value);
		if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
			value[vl - 1] = '\0';
			value++;
		}
		char msg[256];
		rc = config_set(c, name, value, msg, sizeof msg);
		if (rc) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			break;
		}
	}
	fclose(f);
	return rc;
}

void config_print_example(FILE *out)
{
	fprintf(out, "# simpled.conf — every option with its default.\n"
		     "# Any option can also be given on the command line as --name value,\n"
		     "# which overrides this file.\n\n");
	for (size_t k = 0; k < NOPTIONS; k++) {
		const struct cfg_option *o = &options[k];
		fprintf(out, "# %s\n", o->help);
		if (o->type == CFG_LIST) {
			char tmp[512];
			snprintf(tmp, sizeof tmp, "%s", o->def);
			char *save = NULL;
			for (char *tok = strtok_r(tmp, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
				fprintf(out, "#%s = %s\n", o->name, tok);
		} else {
			fprintf(out, "#%s = %s\n", o->name, o->def);
		}
		fprintf(out, "\n");
	}
}

void config_print_effective(const config_t *c, FILE *out)
{
	for (size_t k = 0; k < NOPTIONS; k++) {
		const struct cfg_option *o = &options[k];
		const void *field = (const char *)c + o->offset;
		switch (o->type) {
		case CFG_INT:
			fprintf(out, "%s = %d\n", o->name, *(const int *)field);
			break;
		case CFG_BOOL:
			fprintf(out, "%s = %s\n", o->name, *(const bool *)field ? "on" : "off");
			break;
		case CFG_STR: {
			const char *v = *(char *const *)field;
			bool masked = o->secret || (strcmp(o->name, "db") == 0 && v && strstr(v, "password"));
			fprintf(out, "%s = %s\n", o->name, masked && v && *v ? "********" : (v ? v : ""));
			break;
		}
		case CFG_LIST: {
			const cfg_list_t *l = field;
			for (size_t i = 0; i < l->n; i++)
				fprintf(out, "%s = %s\n", o->name, l->items[i]);
			break;
		}
		}
	}
}
