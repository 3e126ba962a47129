/* simpled: options, configuration, migrations, then the server loop.
 *
 * Precedence: built-in defaults < --config FILE < environment
 * (SIMPLED_DB) < command-line options. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/base/log.h"
#include "server/config.h"
#include "server/db/db.h"
#include "server/server.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: simpled [--config FILE] [--listen udp:ADDR:PORT] [--listen tcp:ADDR:PORT] ...\n"
		"               [--db CONNINFO] [--domain NAME]... [--auth on|off] [--log-level LEVEL]\n"
		"               [--check-config] [--print-config] [--NAME VALUE]...\n"
		"Every option of simpled.conf can be given as --name value (see --print-config).\n");
}

/* glibc keeps at most 7 freed blocks per size in its per-thread cache;
 * parsing one SIP message with libosip2 allocates and frees hundreds of
 * blocks of a few sizes, so most of them went through _int_malloc and
 * _int_free: 37% of the server's CPU when relaying MESSAGEs (perf).  The
 * cache size is a tunable read only at process start, so simpled starts
 * itself again once with it set (unless the operator set it already).
 * Measured with scripts/bench.sh message: 72 -> 54-57 us of CPU per
 * relayed MESSAGE, 12,700 -> 16,400-17,700 relayed/s.  The cost is at
 * most COUNT blocks cached per size class, a few MiB in practice. */
#define TCACHE_TUNABLE "glibc.malloc.tcache_count"
#define TCACHE_COUNT "1000"
static void tune_malloc_cache(char **argv)
{
	const char *t = getenv("GLIBC_TUNABLES");
	if ((t && strstr(t, TCACHE_TUNABLE)) || getenv("SIMPLED_MALLOC_TUNED"))
		return;
	char value[1024];
	int n = snprintf(value, sizeof value, "%s%s" TCACHE_TUNABLE "=" TCACHE_COUNT, t ? t : "",
			 t && *t ? ":" : "");
	if (n < 0 || (size_t)n >= sizeof value)
		return;
	/* The guard stops a loop should the tunable not be honoured. */
	if (setenv("GLIBC_TUNABLES", value, 1) != 0 || setenv("SIMPLED_MALLOC_TUNED", "1", 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	/* Still here: run untuned (the environment change is harmless). */
}

int main(int argc, char **argv)
{
	tune_malloc_cache(argv);
	config_t cfg;
	char err[512];
	const char *config_file = NULL;
	bool check_only = false;

	/* glibc's fastbins make every allocation of 1 KiB or more (libpq
	 * results, once per database round trip) consolidate thousands of
	 * small chunks freed by the parser, and later small allocations pay
	 * for splitting them again: measured at over a third of the CPU of a
	 * REGISTER.  Without fastbins small blocks go through the tcache and
	 * the bins directly: ~35% less CPU per request (scripts/bench.sh). */
	mallopt(M_MXFAST, 0);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_file = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--print-config") == 0) {
			config_print_example(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("simpled 0.1\n");
			return 0;
		}
	}

	config_defaults(&cfg);
	if (config_file && config_load_file(&cfg, config_file, err, sizeof err) != 0) {
		fprintf(stderr, "simpled: %s\n", err);
		return 2;
	}
	const char *env_db = getenv("SIMPLED_DB");
	if (env_db && *env_db)
		config_set(&cfg, "db", env_db, err, sizeof err);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--config") == 0) {
			i++;
			continue;
		}
		if (strcmp(a, "--check-config") == 0) {
			check_only = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || !config_has_option(a + 2)) {
			fprintf(stderr, "simpled: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "simpled: option '%s' needs a value\n", a);
			return 2;
		}
		if (config_set(&cfg, a + 2, argv[++i], err, sizeof err) != 0) {
			fprintf(stderr, "simpled: %s\n", err);
			return 2;
		}
	}

	enum log_level lvl;
	if (log_level_parse(cfg.log_level, &lvl) != 0) {
		fprintf(stderr, "simpled: log_level: expected error, warn, info or debug\n");
		return 2;
	}
	log_set_level(lvl);
	if (cfg.min_expires > cfg.max_expires) {
		fprintf(stderr, "simpled: min_expires (%d) is larger than max_expires (%d)\n",
			cfg.min_expires, cfg.max_expires);
		return 2;
	}
	if (!cfg.domain.n) {
		fprintf(stderr, "simpled: at least one domain is needed\n");
		return 2;
	}
	if (check_only) {
		config_print_effective(&cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	if (!cfg.db || !*cfg.db) {
		fprintf(stderr, "simpled: no database configured (--db CONNINFO, SIMPLED_DB, or db = in the "
				"config file); scripts/run.sh starts a private one\n");
		return 2;
	}

	/* Migrations run before anything serves; the database may still be
	 * starting (systemd ordering, containers), so retry for a while. */
	int rc = -1;
	for (int attempt = 0; attempt < 30; attempt++) {
		rc = db_migrate(cfg.db, cfg.schema_dir, err, sizeof err);
		if (rc == 0)
			break;
		LOGW("main", "migrations failed (%s); retrying in 1 s", err);
		sleep(1);
	}
	if (rc != 0) {
		LOGE("main", "giving up: database not usable: %s", err);
		config_free(&cfg);
		return 1;
	}
	rc = server_run(&cfg);
	config_free(&cfg);
	return rc;
}
