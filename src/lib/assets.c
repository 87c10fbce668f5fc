/* assets.c - lookup of the files embedded by src/lib/assets.sh. */
#include "assets.h"

#include <string.h>

/* In the generated source (build/gen/assets_data.c), sorted by name. */
extern const struct cm_asset cm_asset_table[];
extern const size_t cm_asset_count;

const struct cm_asset *cm_asset_find(const char *name)
{
	size_t lo = 0, hi = cm_asset_count;

	if (!name)
		return NULL;
	/* The docs page is also reached with a slash or its file name. */
	if (strcmp(name, "/docs/") == 0 || strcmp(name, "/docs/index.html") == 0)
		name = "/docs";
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, cm_asset_table[mid].name);

		if (c == 0)
			return &cm_asset_table[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct cm_asset *cm_asset_at(size_t i)
{
	return i < cm_asset_count ? &cm_asset_table[i] : NULL;
}
