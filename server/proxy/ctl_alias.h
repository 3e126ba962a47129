/* simplectl commands for the proxy's names (synchronous libpq; simplectl
 * only, never the serving loop):
 *
 *   alias add ALIAS USER@DOMAIN     ALIAS: 1001 (the user's domain), 1001@DOMAIN
 *                                   or sip:1001@DOMAIN
 *   alias del ALIAS                 ALIAS with its domain
 *   alias list [USER@DOMAIN|DOMAIN] prints "sip:alias sip:user@domain", one a line
 *   user set USER@DOMAIN [--name NAME] [--photo URL]   ("" clears a field)
 *
 * Each takes the connection string and the command's arguments (argv[0]
 * is the first argument after the subcommand) and returns simplectl's
 * exit status: 0 ok, 1 usage, 2 not found / already exists, 3 database
 * error.  Alias changes are announced by the aliases trigger
 * (schema/004_proxy.sql) on simpled_aliases; user set announces on
 * simpled_users in the same statement, like every user change. */
#ifndef SD_PROXY_CTL_ALIAS_H
#define SD_PROXY_CTL_ALIAS_H

int proxyctl_alias_add(const char *conninfo, int argc, char **argv);
int proxyctl_alias_del(const char *conninfo, int argc, char **argv);
int proxyctl_alias_list(const char *conninfo, int argc, char **argv);
int proxyctl_user_set(const char *conninfo, int argc, char **argv);

#endif
