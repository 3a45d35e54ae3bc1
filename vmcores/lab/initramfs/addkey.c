/* addkey TYPE DESCRIPTION HEXPAYLOAD: add_key(2) into the user keyring, print the serial.
 * The lab guest has no keyutils; the dm-crypt scenario needs a "logon" key that
 * kernel/crash_dump_dm_crypt.c finds with request_key(&key_type_logon, description). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	unsigned char buf[128];
	size_t n = 0;
	long serial;

	if (argc != 4) {
		fprintf(stderr, "usage: addkey TYPE DESCRIPTION HEXPAYLOAD\n");
		return 2;
	}
	for (const char *p = argv[3]; p[0] && p[1] && n < sizeof(buf); p += 2) {
		unsigned int v;
		if (sscanf(p, "%2x", &v) != 1)
			return 2;
		buf[n++] = (unsigned char)v;
	}
	/* KEY_SPEC_USER_KEYRING = -4 */
	serial = syscall(SYS_add_key, argv[1], argv[2], buf, n, -4);
	if (serial < 0) {
		perror("add_key");
		return 1;
	}
	printf("%ld\n", serial);
	return 0;
}
