/* Growable byte buffer with checked appends, so no code in the project
 * hand-counts a buffer size before formatting into it.  A buffer that
 * failed to grow remembers the failure (b->err) and ignores further
 * appends; callers check once at the end. */
#ifndef SD_BUF_H
#define SD_BUF_H

#include <stddef.h>

typedef struct buf {
	char *data;   /* always NUL-terminated when len > 0 or after buf_cstr */
	size_t len;
	size_t cap;
	int err;      /* 0 or -ENOMEM / -EMSGSIZE; sticky */
	size_t limit; /* 0 = unlimited; appends beyond it set -EMSGSIZE */
} buf_t;

void buf_init(buf_t *b, size_t limit);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *data, size_t len);
int buf_puts(buf_t *b, const char *s);
/* Appends a string literal (its length known at compile time). */
#define buf_put_lit(b, lit) buf_append((b), "" lit, sizeof(lit) - 1)
/* Appends n in decimal (no printf: hot paths build every message). */
int buf_put_uint(buf_t *b, unsigned long long n);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (used for stream reassembly). */
void buf_consume(buf_t *b, size_t n);
/* Returns the NUL-terminated contents (never NULL). */
const char *buf_cstr(buf_t *b);
/* Hands the heap block to the caller (free() it) and resets the buffer. */
char *buf_steal(buf_t *b, size_t *len);

#endif
