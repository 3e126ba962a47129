/* simplectl commands for buddy lists (synchronous libpq; simplectl only,
 * never the serving loop).  The lists are the user's RFC 4826 documents
 * in xcap_documents (schema/005_xcap.sql), edited in place so XCAP
 * clients see the same lists:
 *
 *   buddies add USER@DOMAIN LIST BUDDY [NAME]
 *       adds BUDDY (user@domain or sip:user@domain) with display name
 *       NAME to list LIST of the user's resource-lists document "index"
 *       (creating both as needed), and makes sure the user's
 *       rls-services document has the list's service URI
 *       sip:USER-LIST@DOMAIN, which it prints.  A client subscribes to
 *       that URI (Event: presence, Supported: eventlist) for the list.
 *   buddies del USER@DOMAIN LIST BUDDY
 *   buddies list USER@DOMAIN [LIST]    prints "LIST sip:buddy [NAME]", one a line
 *
 * Each edit is one transaction; the table's trigger announces it on
 * simpled_xcap, so running servers update list subscriptions at once.
 * The XCAP root written into rls-services references is
 * $SIMPLED_XCAP_ROOT (default http://127.0.0.1:8080/xcap-root).  Returns
 * simplectl's exit status: 0 ok, 1 usage, 2 not found / already there,
 * 3 database error. */
#ifndef SD_CTL_BUDDIES_H
#define SD_CTL_BUDDIES_H

int buddyctl_add(const char *conninfo, int argc, char **argv);
int buddyctl_del(const char *conninfo, int argc, char **argv);
int buddyctl_list(const char *conninfo, int argc, char **argv);

#endif
