/* `simplectl messages list|purge USER@DOMAIN`: the operator's view of the
 * store-and-forward table (synchronous libpq; simplectl only).
 *
 * Both take the connection string and the command's arguments (argv[0]
 * = USER@DOMAIN) and return simplectl's exit status: 0 ok, 1 usage,
 * 2 nothing found, 3 database error.  purge announces the AOR on channel
 * simpled_messages in the same statement, so running servers re-count
 * that mailbox as the delete commits. */
#ifndef SD_CTL_MESSAGES_H
#define SD_CTL_MESSAGES_H

int msgctl_list(const char *conninfo, int argc, char **argv);
int msgctl_purge(const char *conninfo, int argc, char **argv);

#endif
