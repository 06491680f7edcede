/* serve.c — serves the embedded dashboard (web_assets.h) over canaryd's HTTP server:
 * GET / and GET /assets/<file>.
 *
 * Promises: the right Content-Type; a strong ETag with "Cache-Control: no-cache" (browsers
 * revalidate, and get 304 while the build is the same); the gzip copy to clients that accept
 * gzip; a Content-Security-Policy that allows only canaryd's own scripts, styles and API (the
 * dashboard loads nothing from elsewhere). A client asking GET / for JSON only (Accept:
 * application/json, no text/html) gets canaryd's JSON index as before. */
#include "web_assets.h"

#include "api/api.h"

#include <string.h>

static const struct web_asset *find_asset(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++) {
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    }
    return NULL;
}

static bool wants_json_only(struct request *req)
{
    const char *accept = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept");
    return accept != NULL && strstr(accept, "application/json") != NULL &&
           strstr(accept, "text/html") == NULL;
}

/* Whether an If-None-Match list names etag (or is "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
    if (inm == NULL)
        return false;
    if (strcmp(inm, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p != NULL; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ')
            return true;
    }
    return false;
}

static bool accepts_gzip(struct request *req)
{
    const char *ae = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept-Encoding");
    const char *g = ae != NULL ? strstr(ae, "gzip") : NULL;
    if (g == NULL)
        return false;
    if (strncmp(g + 4, ";q=0", 4) != 0)
        return true;
    const char *d = g + 8; /* "gzip;q=0", "gzip;q=0.000": refused; "gzip;q=0.5": accepted */
    if (*d == '.')
        d++;
    while (*d == '0')
        d++;
    return *d >= '1' && *d <= '9';
}

enum MHD_Result api_web(struct request *req)
{
    if (strcmp(req->path, "/") == 0 && wants_json_only(req))
        return api_index(req);
    const struct web_asset *a = find_asset(req->path);
    if (a == NULL)
        return api_respond_error(req, 404, "not_found", NULL, "no such file: %s", req->path);
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-None-Match");
    bool not_modified = etag_matches(inm, a->etag);
    bool gz = !not_modified && a->gz != NULL && accepts_gzip(req);
    struct MHD_Response *resp;
    if (not_modified)
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(
            gz ? a->gz_len : a->len, (void *)(gz ? a->gz : a->data), MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->content_type);
    MHD_add_response_header(resp, "ETag", a->etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; "
                            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    if (gz)
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
    unsigned status = not_modified ? 304 : 200;
    req->status = status;
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}
