/* api_notifications.c — the notification outbox over HTTP, read-only:
 *   GET /api/v1/notifications?status=&alert=&channel=&before=&limit=
 *        newest first (by id); limit 1..500, default 50; before=<id> pages back, and
 *        next_before is the id to pass for the next page (null on the last one)
 *   GET /api/v1/notifications/<id>      one notification
 *
 * What it promises: a recipient's address never leaves canaryd whole. Phone numbers keep
 * the "+", the first two digits and the last two ("+49*********78"), e-mail addresses their
 * first character and the domain ("o***@example.com"), webhook URLs their scheme, host and
 * port (a path or query often carries a token, and user:password@ a password); anything else
 * is "***". The stored error text is scrubbed the same way, and every run of eight or more
 * digits left in it is masked, so a number a provider quoted back does not leak either. The
 * payload is not shown; only its "event" (what the notification is about) is. */
#include "api/api.h"

#include "core/error.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NOTIFICATIONS_PAGE     500
#define DEFAULT_NOTIFICATIONS_PAGE 50
#define MASKED_MAX                 (STORE_NOTIFY_ADDR_LEN + 16)
#define PHONE_SHOWN_HEAD           2 /* digits after the "+" */
#define PHONE_SHOWN_TAIL           2
#define LONG_DIGIT_RUN             8 /* masked wherever it appears in an error text */

static const char *const statuses[] = {"pending", "sending",   "delivered",
                                       "failed",  "cancelled", NULL};

/* ---- masking ---- */

static bool is_phone_channel(const char *channel)
{
    return !strcmp(channel, "sms") || !strcmp(channel, "whatsapp") || !strcmp(channel, "voice");
}

/* "+4915112345678" -> "+49*********78"; an optional "whatsapp:" prefix is kept. Anything that
 * is not "+" and 6 to 20 digits is masked whole. */
static void mask_phone(const char *addr, char *out, size_t len)
{
    const char *prefix = "";
    if (strncmp(addr, "whatsapp:", 9) == 0) {
        prefix = "whatsapp:";
        addr += 9;
    }
    size_t digits = strlen(addr + (addr[0] == '+'));
    bool ok = addr[0] == '+' && digits >= 6 && digits <= 20;
    for (size_t i = 1; ok && addr[i]; i++)
        ok = isdigit((unsigned char)addr[i]);
    if (!ok) {
        snprintf(out, len, "***");
        return;
    }
    char stars[32];
    size_t hidden = digits - PHONE_SHOWN_HEAD - PHONE_SHOWN_TAIL;
    memset(stars, '*', hidden);
    stars[hidden] = '\0';
    snprintf(out, len, "%s+%.*s%s%s", prefix, PHONE_SHOWN_HEAD, addr + 1, stars,
             addr + 1 + digits - PHONE_SHOWN_TAIL);
}

/* "ops@example.com" -> "o***@example.com". */
static void mask_email(const char *addr, char *out, size_t len)
{
    const char *at = strrchr(addr, '@');
    if (at == NULL || at == addr || at[1] == '\0' || (unsigned char)addr[0] >= 0x80 ||
        (unsigned char)addr[0] <= ' ') {
        snprintf(out, len, "***");
        return;
    }
    snprintf(out, len, "%c***@%s", addr[0], at + 1);
}

/* "https://user:pw@hooks.example.com:8443/t/SECRET?k=v" -> "https://hooks.example.com:8443". */
static void mask_url(const char *addr, char *out, size_t len)
{
    snprintf(out, len, "***");
    CURLU *u = curl_url();
    if (u == NULL)
        return;
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, addr, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
            snprintf(out, len, "%s://%s:%s", scheme, host, port);
        else
            snprintf(out, len, "%s://%s", scheme, host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* The address as the API shows it (see the top of the file). */
static void mask_address(const char *channel, const char *addr, char *out, size_t len)
{
    if (is_phone_channel(channel))
        mask_phone(addr, out, len);
    else if (!strcmp(channel, "email"))
        mask_email(addr, out, len);
    else if (!strcmp(channel, "webhook"))
        mask_url(addr, out, len);
    else
        snprintf(out, len, "***");
}

/* Replaces every occurrence of needle (when at least 4 bytes long) in text with rep. */
static void replace_all(char *text, size_t cap, const char *needle, const char *rep)
{
    size_t nl = strlen(needle), rl = strlen(rep);
    if (nl < 4)
        return;
    char *p = text;
    while ((p = strstr(p, needle)) != NULL) {
        size_t tail = strlen(p + nl);
        if ((size_t)(p - text) + rl + tail + 1 > cap) { /* no room: cut the text there */
            snprintf(p, cap - (size_t)(p - text), "%s", rep);
            return;
        }
        memmove(p + rl, p + nl, tail + 1);
        memcpy(p, rep, rl);
        p += rl;
    }
}

/* The stored error text with the address masked (also in the forms a provider may quote it:
 * without "+" or "whatsapp:"), then every remaining run of LONG_DIGIT_RUN or more digits
 * masked but for its first and last two. */
static void scrub_error(const struct store_notification *n, const char *masked, char *out,
                        size_t cap)
{
    snprintf(out, cap, "%s", n->last_error);
    const char *addr = n->address;
    replace_all(out, cap, addr, masked);
    if (is_phone_channel(n->channel)) {
        if (strncmp(addr, "whatsapp:", 9) == 0)
            addr += 9;
        const char *bare = masked;
        if (strncmp(bare, "whatsapp:", 9) == 0)
            bare += 9;
        replace_all(out, cap, addr, bare);
        if (addr[0] == '+' && bare[0] == '+')
            replace_all(out, cap, addr + 1, bare + 1);
    }
    for (char *p = out; *p;) {
        size_t run = 0;
        while (isdigit((unsigned char)p[run]))
            run++;
        if (run >= LONG_DIGIT_RUN)
            memset(p + PHONE_SHOWN_HEAD, '*', run - PHONE_SHOWN_HEAD - PHONE_SHOWN_TAIL);
        p += run ? run : 1;
    }
}

/* ---- JSON ---- */

/* Unix milliseconds, or null for 0 (never / not applicable), as api_alert_json() writes
 * times. */
static void add_time(cJSON *o, const char *name, int64_t ms)
{
    api_add_number(o, name, ms != 0 ? (double)ms : NAN);
}

static void add_text(cJSON *o, const char *name, const char *s)
{
    if (s[0] != '\0')
        cJSON_AddStringToObject(o, name, s);
    else
        cJSON_AddNullToObject(o, name);
}

/* The payload's "event" ("opened", "escalated", "resolved", ...), or null. */
static void add_event(cJSON *o, const char *payload)
{
    cJSON *p = cJSON_Parse(payload);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(p, "event");
    if (cJSON_IsString(ev))
        cJSON_AddStringToObject(o, "event", ev->valuestring);
    else
        cJSON_AddNullToObject(o, "event");
    cJSON_Delete(p);
}

static cJSON *notification_json(const struct store_notification *n)
{
    char masked[MASKED_MAX], error[STORE_NOTIFY_ERROR_LEN + MASKED_MAX];
    mask_address(n->channel, n->address, masked, sizeof masked);
    scrub_error(n, masked, error, sizeof error);
    bool waiting = !strcmp(n->status, "pending") || !strcmp(n->status, "sending");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)n->id);
    if (n->alert_id != 0)
        cJSON_AddNumberToObject(o, "alert_id", (double)n->alert_id);
    else
        cJSON_AddNullToObject(o, "alert_id"); /* a test message */
    cJSON_AddNumberToObject(o, "step", n->step);
    cJSON_AddStringToObject(o, "kind", n->kind);
    cJSON_AddStringToObject(o, "channel", n->channel);
    cJSON_AddStringToObject(o, "recipient", n->recipient);
    cJSON_AddStringToObject(o, "address", masked);
    cJSON_AddStringToObject(o, "status", n->status);
    cJSON_AddNumberToObject(o, "attempts", n->attempts);
    add_time(o, "next_attempt_ms", waiting ? n->next_attempt_ms : 0);
    add_time(o, "created_ms", n->created_ms);
    add_time(o, "updated_ms", n->updated_ms);
    add_text(o, "provider_id", n->provider_id);
    add_text(o, "last_error", error);
    add_event(o, n->payload);
    return o;
}

/* ---- handlers ---- */

static bool one_of_param(struct request *req, const char *name, const char *const *values,
                         const char **out)
{
    const char *v = api_query(req, name);
    if (v == NULL)
        return true;
    for (const char *const *p = values; *p != NULL; p++) {
        if (!strcmp(v, *p)) {
            *out = *p;
            return true;
        }
    }
    char list[128] = "";
    for (const char *const *p = values; *p != NULL; p++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *p);
    }
    api_respond_error(req, 400, "bad_query", name, "unknown value '%.32s' (one of: %s)", v, list);
    return false;
}

enum MHD_Result api_notifications_list(struct request *req)
{
    static const char *const params[] = {"status", "alert", "channel", "before", "limit", NULL};
    static const char *const channels[] = {"sms", "whatsapp", "voice", "webhook", "email", NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    struct store_outbox_filter f = {.status = NULL, .channel = NULL};
    uint64_t limit = DEFAULT_NOTIFICATIONS_PAGE, before = 0, alert = 0;
    if (!one_of_param(req, "status", statuses, &f.status) ||
        !api_query_uint(req, "alert", 1, UINT64_MAX, &alert) ||
        !one_of_param(req, "channel", channels, &f.channel) ||
        !api_query_uint(req, "before", 1, UINT64_MAX, &before) ||
        !api_query_uint(req, "limit", 1, MAX_NOTIFICATIONS_PAGE, &limit))
        return MHD_YES;
    f.alert_id = alert;
    f.before_id = before;
    f.limit = limit;
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    /* A row holds its payload (4 KiB): a page is allocated per request, not on the stack. */
    struct store_notification *list = calloc(limit, sizeof *list);
    char err[512];
    int n = list ? store_outbox_list(s, &f, list, err, sizeof err) : -1;
    api_reader_release(req, s);
    if (n < 0) {
        free(list);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s",
                                 list ? err : "out of memory");
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "notifications");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, notification_json(&list[i]));
    api_add_next_before(root, (uint64_t)n == limit, n > 0 ? list[n - 1].id : 0);
    free(list);
    return api_respond_json(req, 200, root, NULL);
}

enum MHD_Result api_notification_get(struct request *req)
{
    static const char *const params[] = {NULL};
    if (!api_query_check(req, params))
        return MHD_YES;
    const char *seg = req->segments[3];
    char *end;
    errno = 0;
    unsigned long long id = strtoull(seg, &end, 10);
    if (seg[0] < '0' || seg[0] > '9' || *end != '\0' || errno != 0 || id == 0)
        return api_respond_error(req, 400, "invalid_field", "id",
                                 "a notification id is a positive number");
    struct store *s = api_reader(req);
    if (s == NULL)
        return MHD_YES;
    struct store_notification *n = calloc(1, sizeof *n);
    char err[512] = "out of memory";
    int rc = n ? store_outbox_get(s, id, n, err, sizeof err) : CANARY_ENOMEM;
    api_reader_release(req, s);
    if (rc != 0) {
        free(n);
        if (rc == CANARY_ENOTFOUND)
            return api_respond_error(req, 404, "not_found", "id", "no notification %llu", id);
        return api_respond_error(req, 503, "store_unavailable", NULL, "%s", err);
    }
    cJSON *o = notification_json(n);
    free(n);
    return api_respond_json(req, 200, o, NULL);
}
