/* replay.c - runs a libFuzzer harness over every file of a corpus directory
 * without libFuzzer, so that make test replays the stored corpus under the
 * sanitizers. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file at path into a fresh buffer; NULL on failure. */
static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	size_t cap = 0, len = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len == cap) {
			uint8_t *q;

			cap = cap ? cap * 2 : 4096;
			q = realloc(p, cap);
			if (!q) {
				free(p);
				fclose(f);
				return NULL;
			}
			p = q;
		}
		size_t r = fread(p + len, 1, cap - len, f);

		if (r == 0)
			break;
		len += r;
	}
	fclose(f);
	*n = len;
	return p;
}

int main(int argc, char **argv)
{
	int files = 0;

	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (!d) {
			fprintf(stderr, "replay: %s: cannot open\n", argv[i]);
			return 2;
		}
		while ((e = readdir(d))) {
			char path[4096];
			size_t n = 0;
			uint8_t *p;

			if (e->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name) >=
			    sizeof(path))
				continue;
			p = slurp(path, &n);
			if (!p) {
				fprintf(stderr, "replay: %s: cannot read\n", path);
				closedir(d);
				return 2;
			}
			LLVMFuzzerTestOneInput(p, n);
			free(p);
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	return files > 0 ? 0 : 1;
}
