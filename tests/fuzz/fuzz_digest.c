/* libFuzzer target for the digest credentials parser and the nonce check
 * (server/auth).  The input is an Authorization header value as a client
 * could send it; it is copied into a heap block of exactly len + 1 bytes
 * so ASan reports any read past the terminating NUL.
 *
 * Build by hand, e.g.:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I/work/main \
 *     tests/fuzz/fuzz_digest.c server/auth/digest.c server/auth/nonce.c \
 *     -lcrypto -o fuzz_digest
 *   ./fuzz_digest tests/fuzz/corpus/digest/ */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	/* A fixed time keeps runs reproducible. */
	const time_t now = 1700000000;
	auth_creds_t creds;
	char *s;
	int rc;

	if (!ready) {
		/* A fixed secret, so a crashing input replays the same way. */
		if (auth_nonce_init("fuzz") != 0)
			abort();
		ready = 1;
	}

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	rc = auth_parse_credentials(s, &creds);
	if (rc != 0 && rc != -EINVAL && rc != -ENOTSUP)
		abort();
	if (rc == 0) {
		/* Parsed fields are NUL-terminated within their buffers. */
		if (memchr(creds.username, '\0', sizeof creds.username) == NULL ||
		    memchr(creds.uri, '\0', sizeof creds.uri) == NULL ||
		    memchr(creds.response, '\0', sizeof creds.response) == NULL)
			abort();
		rc = auth_nonce_check(creds.nonce, creds.realm, now, 300);
		if (rc != 0 && rc != -EINVAL && rc != -ETIMEDOUT)
			abort();
		/* Exercise the response path too; any answer is fine as
		 * long as it does not crash. */
		(void)auth_check_response(&creds, "REGISTER",
					  creds.algo == AUTH_ALGO_SHA256
					      ? "7987c64c30e25f1b74be53f966b49b90"
						"f2808aa92faf9a00262392d7b4794232"
					      : "3d78807defe7de2157e2b0b6573a855f");
	}

	/* The raw input as a nonce as well.  Forging one would take a
	 * 128-bit tag, so anything but -EINVAL here is a bug. */
	if (auth_nonce_check(s, "example.com", now, 300) != -EINVAL)
		abort();

	free(s);
	return 0;
}
