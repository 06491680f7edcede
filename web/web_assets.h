/* web_assets.h — the dashboard's files, embedded in canaryd at build time (web/embed.cmake
 * generates the table from web/src and the npm-fetched uPlot; web/serve.c serves it).
 *
 * Every entry is immutable, static data: the bytes, a gzip copy when smaller (gz NULL
 * otherwise), and a strong ETag (quoted) derived from the bytes' SHA-256. */
#ifndef CANARY_WEB_ASSETS_H
#define CANARY_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
    const char *path;         /* the URL path, e.g. "/" or "/assets/app.js" */
    const char *content_type; /* e.g. "text/javascript; charset=utf-8" */
    const char *etag;         /* "\"3f2a...\"" */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* gzip of data, or NULL */
    size_t gz_len;
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

#endif
