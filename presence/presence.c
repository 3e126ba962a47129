/* The presence module's start and stop (see presence.h): options, the
 * package table, router rows.  Adding a package is one pkg_*.c file and
 * one line in PACKAGES below. */
#include "presence/presence.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "presence/event.h"
#include "presence/pidf.h"
#include "presence/pkgs.h"
#include "presence/publish.h"
#include "presence/rules.h"
#include "presence/xcap_store.h"
#include "server/base/log.h"
#include "server/router.h"

static const ev_package_t *const PACKAGES[] = {
	&pkg_presence,
	&pkg_winfo,
};

static bool started;

static bool no_domain(const char *host)
{
	(void)host;
	return false;
}

/* Rules of a presentity changed: its subscriptions are re-evaluated. */
static void rules_changed(const char *presentity) { ev_reauthorize(presentity); }

int presence_init(uv_loop_t *loop, const presence_options_t *o)
{
	ev_auth_t policy = EV_AUTH_ALLOW;
	if (o->default_policy && *o->default_policy) {
		if (strcasecmp(o->default_policy, "allow") == 0)
			policy = EV_AUTH_ALLOW;
		else if (strcasecmp(o->default_policy, "pending") == 0 ||
			 strcasecmp(o->default_policy, "confirm") == 0)
			policy = EV_AUTH_PENDING;
		else {
			LOGE("presence", "default policy '%s' is neither allow nor pending", o->default_policy);
			return -EINVAL;
		}
	}
	bool (*local)(const char *) = o->is_local_domain ? o->is_local_domain : no_domain;
	unsigned min_exp = o->min_expires ? o->min_expires : 60;
	unsigned max_exp = o->max_expires ? o->max_expires : 3600;
	unsigned retry = o->retry_after ? o->retry_after : 5;

	pidf_init();
	int err = rules_init(loop, o->conninfo, policy, rules_changed);
	if (err) {
		LOGE("presence", "rules initialisation failed (%d)", err);
		return err;
	}
	for (size_t i = 0; i < sizeof PACKAGES / sizeof PACKAGES[0]; i++) {
		err = ev_register_package(PACKAGES[i]);
		if (err)
			return err;
	}
	err = pkg_presence_init();
	if (!err)
		err = pkg_winfo_init();
	if (!err)
		err = pkg_message_summary_init();
	if (!err)
		err = pkg_dialog_init();
	if (!err)
		err = pkg_cc_init(loop, o->cc_queue_expires);
	if (err)
		return err;
	pub_options_t po = {
		.min_expires = min_exp,
		.max_expires = max_exp,
		.default_expires = o->default_expires ? o->default_expires : 3600,
		.max_per_resource = o->max_publications_per_presentity ? o->max_publications_per_presentity : 16,
		.retry_after = retry,
		.auth = o->auth,
		.is_local_domain = local,
		.node_name = o->node_name,
	};
	/* Publications first: the first NOTIFYs after a restart compose them. */
	err = pub_init(loop, &po, o->conninfo);
	if (err)
		return err;
	/* Buddy lists: the documents, then the list services built from them,
	 * both before ev_init so stored list subscriptions are recognised. */
	err = xstore_init(loop, o->conninfo);
	if (!err)
		err = rls_init(local);
	if (err) {
		LOGE("presence", "buddy lists initialisation failed (%d)", err);
		return err;
	}
	ev_options_t eo = {
		.min_expires = min_exp,
		.max_expires = max_exp,
		.max_subs_per_watcher = o->max_subscriptions_per_watcher ? o->max_subscriptions_per_watcher : 200,
		.retry_after = retry,
		.notify_interval_ms = o->notify_interval_ms,
		.notify_max_failures = 3,
		.auth = o->auth,
		.is_local_domain = local,
		.node_name = o->node_name,
		.advertised_host = o->advertised_host,
	};
	err = ev_init(loop, &eo, o->conninfo);
	if (err)
		return err;
	router_add("SUBSCRIBE", ev_handle_subscribe);
	router_add("PUBLISH", pub_handle_publish);
	started = true;
	LOGI("presence", "presence server ready (default policy %s)", ev_auth_name(policy));
	return 0;
}

void presence_stop(void)
{
	if (!started)
		return;
	pub_stop();
	ev_stop();
}

void presence_shutdown(void)
{
	if (!started)
		return;
	ev_shutdown();
	rls_shutdown();
	xstore_shutdown();
	pub_shutdown();
	pkg_cc_shutdown();
	pkg_presence_shutdown();
	rules_shutdown();
	started = false;
}
