/* Presence authorization rules: who may watch whom (RFC 3856 §6.6, the
 * actions of RFC 5025 sub-handling).
 *
 * Table presence_rules (schema/002_presence.sql) holds, per presentity,
 * rules for a watcher given as an exact AOR ("sip:bob@example.com") or a
 * whole domain ("example.com", also written "*@example.com"); an exact
 * rule wins over a domain rule.  Actions: allow, block, polite-block,
 * pending.  Watchers no rule names get the configured default (allow or
 * pending); the presentity itself is always allowed.
 *
 * The rules are held in memory (loaded at start) and a change made by
 * simplectl takes effect at once: it runs
 *     SELECT pg_notify('simpled_rules', '<presentity AOR>')
 * (an empty payload or '*' means "everything"), every node LISTENs on
 * that channel, re-reads that presentity's rules and calls the change
 * callback, which re-evaluates the affected subscriptions. */
#ifndef SD_RULES_H
#define SD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "presence/event.h"

#define RULES_CHANNEL "simpled_rules"

/* Called after the rules of presentity were re-read. */
typedef void (*rules_changed_cb)(const char *presentity);

/* Loads every rule synchronously (start-up only) and LISTENs for
 * changes.  default_policy is EV_AUTH_ALLOW or EV_AUTH_PENDING. */
int rules_init(uv_loop_t *loop, const char *conninfo, ev_auth_t default_policy,
	       rules_changed_cb changed);
void rules_shutdown(void);

/* The action for watcher (an AOR) watching presentity. */
ev_auth_t rules_eval(const char *presentity, const char *watcher);

/* --- pure helpers (unit-tested) ------------------------------------------- */

typedef struct rule {
	char *watcher;   /* "sip:bob@example.com" or "example.com" (normalised) */
	ev_auth_t action;
} rule_t;

/* Picks the action among rules for watcher: exact AOR first, then its
 * domain; returns false when no rule applies. */
bool rules_match(const rule_t *rules, size_t n, const char *watcher, ev_auth_t *out);
/* "allow", "block", "polite-block" (also "polite_block"), "pending"
 * (also "confirm").  Returns 0 or -EINVAL. */
int rules_action_parse(const char *s, ev_auth_t *out);
/* The table's name of an action: "allow", "block", "polite-block",
 * "pending". */
const char *rules_action_name(ev_auth_t a);
/* Normalises a watcher pattern into out: "*@dom" and "dom" -> "dom"
 * (lower-cased); "bob@dom" -> "sip:bob@dom"; "sips:" -> "sip:"; the host
 * of an AOR is lower-cased.  Returns 0, -EINVAL or -ENOSPC. */
int rules_normalize_watcher(const char *in, char *out, size_t outlen);

/* The rules of presentity held in memory (borrowed until the next change
 * of that presentity's rules); *n = 0 when none.  For the XCAP pres-rules
 * view. */
const rule_t *rules_get(const char *presentity, size_t *n);
/* Replaces the rules of presentity in memory after a committed write
 * (XCAP PUT of pres-rules) and re-evaluates its watchers at once, without
 * waiting for the simpled_rules announcement (which re-reads the same
 * rows).  Copies rules. */
void rules_replace(const char *presentity, const rule_t *rules, size_t n);

#endif
