/* cli_api.c — one JSON request to canaryd for the `canary` commands; contracts in cli_api.h. */
#include "cli/cli_api.h"

#include "cli/cli_tls.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct answer {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t add = size * n;
    if (a->len + add > CLI_API_MAX_ANSWER)
        return 0; /* libcurl fails the transfer */
    char *grown = malloc(a->len + add + 1);
    if (grown == NULL)
        return 0;
    /* Copy and wipe rather than realloc, so no piece of a secret is left in freed memory. */
    if (a->data != NULL) {
        memcpy(grown, a->data, a->len);
        OPENSSL_cleanse(a->data, a->len);
        free(a->data);
    }
    a->data = grown;
    memcpy(a->data + a->len, p, add);
    a->len += add;
    a->data[a->len] = '\0';
    return add;
}

cJSON *cli_api_call(const char *prog, const char *base_url, const char *bearer, const char *ca,
                    const char *method, const char *path, const char *body, long timeout_s,
                    long *status)
{
    *status = 0;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        fprintf(stderr, "%s: cannot start libcurl\n", prog);
        return NULL;
    }
    char url[2048], auth[1024];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (bearer != NULL && bearer[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
        OPENSSL_cleanse(auth, sizeof auth);
    }
    struct answer a = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    cli_tls_apply(c, ca); /* verification on; http/https only */
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "%s: %s: %s\n", prog, url, curl_easy_strerror(rc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    /* The header list holds a copy of the credential. */
    for (struct curl_slist *s = h; s != NULL; s = s->next)
        OPENSSL_cleanse(s->data, strlen(s->data));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    cJSON *j = rc == CURLE_OK && a.data != NULL ? cJSON_Parse(a.data) : NULL;
    if (a.data != NULL)
        OPENSSL_cleanse(a.data, a.len);
    free(a.data);
    return j;
}
