/* SIP message framing over a byte stream (RFC 3261 §18.3): a message is
 * its header block, terminated by an empty line, plus Content-Length bytes
 * of body.  Pure functions, unit-tested on their own and fuzzed. */
#ifndef SD_FRAME_H
#define SD_FRAME_H

#include <stddef.h>
#include <sys/types.h>

/* Looks at the start of a stream buffer.
 * Returns the length of the complete message at buf[0] (> 0),
 *         0 when more bytes are needed,
 *         -EMSGSIZE when the message is or will be larger than max_msg,
 *         -EBADMSG when Content-Length is negative, not a number, or
 *           given twice with different values.
 * A missing Content-Length is taken as 0 (RFC 3261 §18.3 requires it on
 * streams; treating it as an empty body is what robust servers do).
 * Leading CRLFs (keep-alive pings, RFC 5626 §4.4.1) are not part of a
 * message: call frame_skip_keepalive() first.
 * buf need not be NUL-terminated; no byte at or past buf[len] is read.
 * max_msg == 0 means no limit. */
ssize_t frame_message(const char *buf, size_t len, size_t max_msg);

/* Returns how many leading "\r\n" / "\n" bytes are keep-alive noise. Sets
 * *ping to 1 when a double CRLF ping was seen (answer with a single CRLF).
 * When the buffer holds nothing but line ends, the unpaired tail (a lone
 * "\r", or the first CRLF of a ping whose second half has not arrived) is
 * not counted, so a ping split across two TCP segments is still seen as
 * one.  *ping is set to 0 when no ping was seen; ping may be NULL. */
size_t frame_skip_keepalive(const char *buf, size_t len, int *ping);

/* Resumable framing for a stream that grows by appends.  frame_message()
 * rescans the buffer from its first byte on every call, so a peer sending
 * one byte per segment would cost O(n^2) over a message; the state below
 * remembers how far the search for the end of the header block got and,
 * once found, the message's total length, so each byte is looked at once.
 *
 * Contract: buf[0] is the first byte of the same message on every call
 * and only bytes appended since the previous call are new.  Reset the
 * state (frame_state_init) whenever the message start moves (after a
 * message or keep-alive bytes were consumed).  Same return values as
 * frame_message(); an error is sticky. */
typedef struct frame_state {
	size_t scanned; /* buf[0..scanned) holds no complete end of headers */
	ssize_t result; /* > 0 total message length once known, < 0 error, 0 unknown */
} frame_state_t;

static inline void frame_state_init(frame_state_t *st)
{
	st->scanned = 0;
	st->result = 0;
}

ssize_t frame_message_resume(const char *buf, size_t len, size_t max_msg, frame_state_t *st);

#endif
