/* transport_http.c — signed readings to canaryd's ingest endpoint with libcurl; see
 * transport_http.h. */
#include "transport_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

struct answer {
    char *buf;
    size_t cap, len;
};

/* Keeps the first cap - 1 bytes of the answer; the rest is read and dropped. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t got = size * n;
    size_t take = a->len + 1 < a->cap ? a->cap - 1 - a->len : 0;
    if (take > got)
        take = got;
    memcpy(a->buf + a->len, p, take);
    a->len += take;
    a->buf[a->len] = '\0';
    return got;
}

int cdev_http_open(struct cdev_http *h, const char *base_url, const char *ca_file)
{
    memset(h, 0, sizeof *h);
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    if (n == 0 || (size_t)snprintf(h->url, sizeof h->url, "%.*s/api/v1/ingest", (int)n, base_url) >=
                      sizeof h->url)
        return -1;
    h->curl = curl_easy_init();
    if (h->curl == NULL)
        return -1;
    /* http and https only (no redirects to file:// or elsewhere); TLS 1.2 or newer, with the
     * peer and its name verified (libcurl's defaults, stated). */
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file != NULL && curl_easy_setopt(h->curl, CURLOPT_CAINFO, ca_file) != CURLE_OK) {
        curl_easy_cleanup(h->curl);
        h->curl = NULL;
        return -1;
    }
    return 0;
}

long cdev_http_send(struct cdev_http *h, const char *token, size_t len, long timeout_ms,
                    char *answer, size_t cap)
{
    CURL *c = h->curl;
    struct answer a = {answer, cap, 0};
    if (cap > 0)
        answer[0] = '\0';
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/jose");
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, token);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    long status = 0;
    if (rc != CURLE_OK) {
        if (cap > 0)
            snprintf(answer, cap, "%s", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

void cdev_http_close(struct cdev_http *h)
{
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
}
