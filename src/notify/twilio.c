/* twilio.c — SMS, WhatsApp messages and voice calls through Twilio's REST API (notify.h).
 *
 * Requests, as Twilio documents them (twilio.com/docs/messaging/api/message-resource,
 * twilio.com/docs/voice/api/call-resource, twilio.com/docs/usage/your-request-to-twilio):
 *   POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json  To, From, Body
 *   POST {base}/2010-04-01/Accounts/{AccountSid}/Calls.json     To, From, Twiml
 * form-urlencoded, HTTP Basic auth AccountSid:AuthToken. WhatsApp uses the Messages resource
 * with both addresses prefixed "whatsapp:". A created resource answers 201 with its "sid"
 * ("SM..." / "MM..." for messages, "CA..." for calls). Errors answer a JSON object
 *   {"code":21211,"message":"The 'To' number ... is not a valid phone number.",
 *    "more_info":"https://www.twilio.com/docs/errors/21211","status":400}
 * Classification follows Twilio's guidance on retries (base it on the HTTP status, not on the
 * error code): 429 (error 20429: "never processed and always safe to retry") and 5xx are
 * retried, 429 after its Retry-After; every other 4xx — invalid or unverified numbers (21211,
 * 21608), opted-out recipients (21610), refused credentials (401, 20003), an unknown account
 * (404) — is permanent. A voice call speaks the text twice with a pause between, so that a
 * person who picks up late still hears it whole. */
#include "notify/notify_internal.h"

#include "core/utf8.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define TWILIO_API_VERSION "2010-04-01"
#define SAY_TEXT_MAX       1000 /* bytes of spoken text; Twilio's Twiml limit is 4000 chars */
#define ADDRESS_MAX        96

/* Appends s percent-encoded for application/x-www-form-urlencoded: unreserved characters
 * (RFC 3986) as they are, every other byte as %XX. */
static void form_escape(struct notify_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char ch = *p;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (plain) {
            notify__buf_add(b, p, 1);
        } else {
            char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            notify__buf_add(b, enc, 3);
        }
    }
}

static void form_field(struct notify_buf *b, const char *name, const char *prefix,
                       const char *value)
{
    if (b->len > 0)
        notify__buf_adds(b, "&");
    notify__buf_adds(b, name);
    notify__buf_adds(b, "=");
    if (prefix != NULL)
        form_escape(b, prefix);
    form_escape(b, value);
}

/* Appends s[0..n) escaped for XML 1.0 character data or an attribute value: the five special
 * characters as entities, characters XML forbids (C0 controls but tab, newline, return) as
 * spaces, bytes that are not UTF-8 as '?'. Stops before max bytes of input, at a character
 * boundary. */
static void xml_escape(struct notify_buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            switch (ch) {
            case '&':
                notify__buf_adds(b, "&amp;");
                break;
            case '<':
                notify__buf_adds(b, "&lt;");
                break;
            case '>':
                notify__buf_adds(b, "&gt;");
                break;
            case '"':
                notify__buf_adds(b, "&quot;");
                break;
            case '\'':
                notify__buf_adds(b, "&apos;");
                break;
            default:
                if (ch < 0x20 || ch == 0x7F)
                    notify__buf_adds(b, " ");
                else
                    notify__buf_add(b, &s[i], 1);
            }
            i++;
            continue;
        }
        size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
        if (i + len > n) /* cut at max: drop the partial character */
            break;
        if (utf8_valid(s + i, len, NULL))
            notify__buf_add(b, s + i, len);
        else
            notify__buf_adds(b, "?");
        i += len;
    }
}

static void say(struct notify_buf *b, const struct notify_twilio_config *cfg, const char *text)
{
    notify__buf_adds(b, "<Say");
    if (cfg->voice[0] != '\0') {
        notify__buf_adds(b, " voice=\"");
        xml_escape(b, cfg->voice, sizeof cfg->voice);
        notify__buf_adds(b, "\"");
    }
    if (cfg->language[0] != '\0') {
        notify__buf_adds(b, " language=\"");
        xml_escape(b, cfg->language, sizeof cfg->language);
        notify__buf_adds(b, "\"");
    }
    notify__buf_adds(b, ">");
    xml_escape(b, text, SAY_TEXT_MAX);
    notify__buf_adds(b, "</Say>");
}

static bool address_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ADDRESS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            return false;
    }
    return true;
}

static bool sid_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Reads Twilio's answer into res; returns the outcome and formats the error. */
static enum notify_outcome classify(struct notify_client *c, struct notify_result *res,
                                    const char *what, const char *origin, int64_t start,
                                    const char *const *secrets)
{
    long st = res->http_status;
    cJSON *j = c->body.len > 0 ? cJSON_ParseWithLength(c->body.data, c->body.len) : NULL;
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "sid");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(j, "more_info");
    if (cJSON_IsNumber(code))
        res->provider_code = (long)code->valuedouble;

    enum notify_outcome o;
    if (st >= 200 && st < 300) {
        o = NOTIFY_DELIVERED;
        if (cJSON_IsString(sid))
            notify__copy_text(res->provider_id, sizeof res->provider_id, sid->valuestring);
        cJSON_Delete(j);
        /* Twilio created the resource even if its answer lacks a sid: sending again would
         * send twice, so this still counts as delivered. */
        if (res->provider_id[0] == '\0')
            return notify__finish(res, o, start, secrets, "twilio %s: created, no sid in answer",
                                  what);
        return notify__finish(res, o, start, secrets, NULL);
    }
    /* 401/403 (credentials, permissions) and the other 4xx are permanent. */
    o = (st == 429 || st >= 500) ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE;
    if (cJSON_IsString(msg)) {
        o = notify__finish(
            res, o, start, secrets, "twilio %s: HTTP %ld, error %ld: %s%s%s%s", what, st,
            res->provider_code, msg->valuestring, cJSON_IsString(info) ? " (" : "",
            cJSON_IsString(info) ? info->valuestring : "", cJSON_IsString(info) ? ")" : "");
    } else {
        /* Not Twilio's JSON: a proxy or load balancer answered. Quote the start of it. */
        char excerpt[160] = "";
        if (c->body.len > 0)
            notify__copy_text(excerpt, sizeof excerpt, c->body.data);
        o = notify__finish(res, o, start, secrets, "twilio %s: HTTP %ld from %s%s%s", what, st,
                           origin, excerpt[0] ? ": " : "", excerpt);
    }
    cJSON_Delete(j);
    return o;
}

enum notify_outcome notify_twilio_send(struct notify_client *c,
                                       const struct notify_twilio_config *cfg,
                                       const struct notify_message *m, unsigned timeout_ms,
                                       struct notify_result *res)
{
    int64_t start = notify__now_ms();
    notify__result_start(res);
    const char *secrets[3] = {cfg->auth_token, NULL, NULL};
    const bool voice = m->channel == NOTIFY_CHANNEL_VOICE;
    const bool whatsapp = m->channel == NOTIFY_CHANNEL_WHATSAPP;
    const char *what = voice ? "call" : whatsapp ? "whatsapp" : "sms";

    if (!voice && !whatsapp && m->channel != NOTIFY_CHANNEL_SMS)
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio: channel %s is not a Twilio channel",
                              notify_channel_name(m->channel));
    if (!sid_ok(cfg->account_sid) || cfg->auth_token[0] == '\0')
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio: account SID (letters and digits) and auth token must be "
                              "configured");
    const char *from = whatsapp && cfg->whatsapp_from[0] ? cfg->whatsapp_from : cfg->from;
    if (!address_ok(from))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio: no valid sender number configured (%s)",
                              whatsapp ? "whatsapp_from or from" : "from");
    if (m->to == NULL || !address_ok(m->to))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio %s: recipient must be a phone number (E.164, at most %d "
                              "characters, no control characters)",
                              what, ADDRESS_MAX);
    if (m->text == NULL || m->text[0] == '\0')
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio %s: empty text", what);
    const char *base = cfg->base_url[0] ? cfg->base_url : NOTIFY_DEFAULT_TWILIO_URL;
    char origin[NOTIFY_URL_MAX];
    notify__url_origin(base, origin, sizeof origin);
    if (has_prefix(base, "http://") && !notify__url_is_loopback(base))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "twilio: refusing to send the auth token over plain http to %s; "
                              "use https",
                              origin);

    /* The Authorization header's value may come back quoted by a proxy: mask it as well. */
    notify__buf_reset(&c->scrap);
    notify__buf_addf(&c->scrap, "%s:%s", cfg->account_sid, cfg->auth_token);
    size_t raw = c->scrap.len;
    notify__base64(&c->scrap, c->scrap.data, raw);
    char basic[NOTIFY_SECRET_MAX * 2] = "";
    if (!c->scrap.failed)
        notify__copy_text(basic, sizeof basic, c->scrap.data + raw);
    secrets[1] = basic;

    /* URL and form. */
    char url[NOTIFY_URL_MAX + 128];
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof url, "%.*s/%s/Accounts/%s/%s", (int)bl, base, TWILIO_API_VERSION,
             cfg->account_sid, voice ? "Calls.json" : "Messages.json");
    struct notify_buf *form = &c->out;
    notify__buf_reset(form);
    const char *wa = whatsapp ? "whatsapp:" : NULL;
    form_field(form, "To", wa && !has_prefix(m->to, "whatsapp:") ? wa : NULL, m->to);
    form_field(form, "From", wa && !has_prefix(from, "whatsapp:") ? wa : NULL, from);
    if (voice) {
        notify__buf_reset(&c->scrap);
        notify__buf_adds(&c->scrap, "<Response>");
        say(&c->scrap, cfg, m->text);
        notify__buf_adds(&c->scrap, "<Pause length=\"1\"/>");
        say(&c->scrap, cfg, m->text);
        notify__buf_adds(&c->scrap, "</Response>");
        if (!c->scrap.failed)
            form_field(form, "Twiml", NULL, c->scrap.data);
    } else {
        form_field(form, "Body", NULL, m->text);
    }
    if (form->failed || c->scrap.failed)
        return notify__finish(res, NOTIFY_RETRY, start, secrets, "twilio %s: out of memory", what);

    unsigned timeout = notify__timeout(timeout_ms, cfg->timeout_ms);
    CURL *h = c->curl;
    notify__curl_prepare(c, h, "http,https", timeout, cfg->connect_timeout_ms, &cfg->tls);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->account_sid);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->auth_token);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    /* The handle keeps pointers to the password and body until the next reset: drop them. */
    curl_easy_setopt(h, CURLOPT_PASSWORD, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    notify__redact(c->body.data, c->body.len, secrets);

    if (rc != CURLE_OK) {
        char err[CURL_ERROR_SIZE];
        notify__copy_text(err, sizeof err, notify__curl_error(c, rc));
        return notify__finish(res,
                              notify__curl_retryable(rc) ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE,
                              start, secrets, "twilio %s: %s: %s", what, origin, err);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->http_status);
    curl_off_t retry_s = 0;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_s) == CURLE_OK && retry_s > 0)
        res->retry_after_ms = (int64_t)retry_s * 1000;
    return classify(c, res, what, origin, start, secrets);
}
