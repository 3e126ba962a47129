/* libFuzzer target for server/transport/frame.c (RFC 3261 §18.3 stream
 * framing, RFC 5626 §4.4.1 keep-alives).
 *
 * Build by hand (not wired into CMake):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_frame.c server/transport/frame.c -o fuzz_frame
 *   ./fuzz_frame tests/fuzz/corpus/frame
 *
 * The input is copied into a heap block of exactly its size, so ASan
 * catches any read past len.  Invariants checked, for several limits:
 *  - the result is > 0 and <= len (and <= max), 0, -EMSGSIZE or -EBADMSG;
 *  - prefixes agree with the whole: cut at any byte k, the stateless
 *    result is 0 before the message is complete and the same value after
 *    (a complete message never turns into an error by adding bytes);
 *  - the resumable form, fed the buffer one byte longer each call, gives
 *    exactly the stateless answer at every length;
 *  - frame_skip_keepalive only ever skips CR/LF bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/transport/frame.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Splitting at every byte is O(n^2); keep big inputs fast. */
enum { MAX_SPLIT_INPUT = 8192 };

static void check_result(ssize_t r, size_t len, size_t max)
{
	CHECK(r == 0 || r == -EMSGSIZE || r == -EBADMSG || r > 0);
	if (r > 0) {
		CHECK((size_t)r <= len);
		if (max)
			CHECK((size_t)r <= max);
	}
}

static void check_stream(const char *buf, size_t len, size_t max)
{
	ssize_t whole = frame_message(buf, len, max);
	check_result(whole, len, max);
	if (len > MAX_SPLIT_INPUT)
		return;

	frame_state_t st;
	frame_state_init(&st);
	for (size_t k = 0; k <= len; k++) {
		ssize_t r = frame_message(buf, k, max);
		check_result(r, k, max);
		if (whole > 0)
			CHECK(r == ((size_t)whole <= k ? whole : 0));
		else
			CHECK(r == 0 || r == whole);
		CHECK(frame_message_resume(buf, k, max, &st) == r);
	}

	/* Two chunks, split at every point. */
	for (size_t k = 0; k <= len; k += 1 + len / 64) {
		frame_state_init(&st);
		(void)frame_message_resume(buf, k, max, &st);
		CHECK(frame_message_resume(buf, len, max, &st) == whole);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);

	int ping = -1;
	size_t skip = frame_skip_keepalive(buf, size, &ping);
	CHECK(skip <= size);
	CHECK(ping == 0 || ping == 1);
	for (size_t i = 0; i < skip; i++)
		CHECK(buf[i] == '\r' || buf[i] == '\n');

	static const size_t limits[] = {0, 64, 1024, 65535};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		check_stream(buf, size, limits[i]);
		check_stream(buf + skip, size - skip, limits[i]);
	}

	/* Walk the stream as the TCP layer does: skip, frame, consume. */
	size_t off = 0;
	while (off < size) {
		off += frame_skip_keepalive(buf + off, size - off, NULL);
		ssize_t r = frame_message(buf + off, size - off, 65535);
		if (r <= 0)
			break;
		off += (size_t)r;
		CHECK(off <= size);
	}

	free(buf);
	return 0;
}
