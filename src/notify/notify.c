/* notify.c — what the channels share (notify.h, notify_internal.h): libcurl's one-time set-up,
 * the per-thread client, the common request options, the classification of transport
 * errors, and result messages that are one line and hold no secret. */
#include "notify/notify_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/utf8.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int notify_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_rc == CURLE_OK ? 0 : CANARY_EIO;
}

struct notify_client *notify_client_new(void)
{
    if (notify_global_init() != 0)
        return NULL;
    struct notify_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->curl = curl_easy_init();
    c->smtp = curl_easy_init();
    if (c->curl == NULL || c->smtp == NULL) {
        curl_easy_cleanup(c->curl);
        curl_easy_cleanup(c->smtp);
        free(c);
        return NULL;
    }
    return c;
}

void notify_client_free(struct notify_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    curl_easy_cleanup(c->smtp);
    notify__buf_free(&c->body);
    notify__buf_free(&c->out);
    notify__buf_free(&c->scrap);
    free(c);
}

/* ---- configuration defaults ---- */

void notify_twilio_config_init(struct notify_twilio_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->base_url, sizeof cfg->base_url, "%s", NOTIFY_DEFAULT_TWILIO_URL);
    snprintf(cfg->voice, sizeof cfg->voice, "%s", NOTIFY_DEFAULT_VOICE);
    cfg->timeout_ms = NOTIFY_DEFAULT_TIMEOUT_MS;
    cfg->connect_timeout_ms = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS;
}

void notify_webhook_config_init(struct notify_webhook_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_ms = NOTIFY_DEFAULT_TIMEOUT_MS;
    cfg->connect_timeout_ms = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS;
}

void notify_smtp_config_init(struct notify_smtp_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->require_starttls = true;
    cfg->timeout_ms = NOTIFY_DEFAULT_TIMEOUT_MS;
    cfg->connect_timeout_ms = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS;
}

void notify_config_init(struct notify_config *cfg)
{
    notify_twilio_config_init(&cfg->twilio);
    notify_webhook_config_init(&cfg->webhook);
    notify_smtp_config_init(&cfg->smtp);
}

/* ---- names ---- */

static const char *const channel_names[] = {"sms", "whatsapp", "voice", "webhook", "email"};
static const char *const outcome_names[] = {"delivered", "retry", "permanent_failure"};

const char *notify_channel_name(enum notify_channel ch)
{
    return (unsigned)ch < NOTIFY_CHANNEL_COUNT ? channel_names[ch] : "?";
}

const char *notify_outcome_name(enum notify_outcome o)
{
    return (unsigned)o < sizeof outcome_names / sizeof outcome_names[0] ? outcome_names[o] : "?";
}

int notify_channel_parse(const char *s, enum notify_channel *out)
{
    for (unsigned i = 0; i < NOTIFY_CHANNEL_COUNT; i++) {
        if (s != NULL && strcmp(s, channel_names[i]) == 0) {
            *out = (enum notify_channel)i;
            return 0;
        }
    }
    return CANARY_EINVAL;
}

/* ---- dispatch ---- */

enum notify_outcome notify_send(struct notify_client *c, const struct notify_config *cfg,
                                const struct notify_message *m, unsigned timeout_ms,
                                struct notify_result *res)
{
    switch (m->channel) {
    case NOTIFY_CHANNEL_SMS:
    case NOTIFY_CHANNEL_WHATSAPP:
    case NOTIFY_CHANNEL_VOICE:
        return notify_twilio_send(c, &cfg->twilio, m, timeout_ms, res);
    case NOTIFY_CHANNEL_WEBHOOK:
        return notify_webhook_send(c, &cfg->webhook, m, timeout_ms, res);
    case NOTIFY_CHANNEL_EMAIL:
        return notify_smtp_send(c, &cfg->smtp, m, timeout_ms, res);
    }
    notify__result_start(res);
    return notify__finish(res, NOTIFY_PERMANENT_FAILURE, notify__now_ms(), NULL,
                          "unknown channel %d", (int)m->channel);
}

/* ---- buffers ---- */

void notify__buf_reset(struct notify_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void notify__buf_free(struct notify_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool buf_reserve(struct notify_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void notify__buf_add(struct notify_buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void notify__buf_adds(struct notify_buf *b, const char *s)
{
    notify__buf_add(b, s, strlen(s));
}

void notify__buf_addf(struct notify_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        notify__buf_add(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void notify__base64(struct notify_buf *b, const void *p, size_t n)
{
    /* EVP_EncodeBlock writes 4 characters per 3 bytes plus a NUL; work in blocks so a large
     * input never needs a large temporary. */
    const unsigned char *in = p;
    unsigned char tmp[4 * 256 + 1];
    while (n > 0) {
        size_t chunk = n > 3 * 256 ? 3 * 256 : n;
        int k = EVP_EncodeBlock(tmp, in, (int)chunk);
        notify__buf_add(b, tmp, (size_t)k);
        in += chunk;
        n -= chunk;
    }
}

/* ---- results ---- */

int64_t notify__now_ms(void)
{
    return clock_mono_ms();
}

unsigned notify__timeout(unsigned call_ms, unsigned cfg_ms)
{
    if (call_ms != 0)
        return call_ms;
    return cfg_ms != 0 ? cfg_ms : NOTIFY_DEFAULT_TIMEOUT_MS;
}

void notify__result_start(struct notify_result *res)
{
    memset(res, 0, sizeof *res);
    res->outcome = NOTIFY_PERMANENT_FAILURE;
}

void notify__redact(char *s, size_t len, const char *const *secrets)
{
    for (size_t i = 0; secrets != NULL && secrets[i] != NULL; i++) {
        size_t sl = strlen(secrets[i]);
        if (sl == 0)
            continue;
        for (size_t at = 0; at + sl <= len;) {
            if (memcmp(s + at, secrets[i], sl) == 0) {
                memset(s + at, '*', sl);
                at += sl;
            } else {
                at++;
            }
        }
        /* A text cut short may end with the start of a secret: mask that too. */
        size_t min = sl < 4 ? sl : 4;
        for (size_t k = sl - 1; k >= min; k--) {
            if (k <= len && memcmp(s + len - k, secrets[i], k) == 0) {
                memset(s + len - k, '*', k);
                break;
            }
        }
    }
}

void notify__one_line(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r' && s[i + 1] == '\n') {
            memmove(s + i, s + i + 1, n - i); /* a line break is one space, not two */
            n--;
            continue;
        }
        if (ch < 0x20 || ch == 0x7F) {
            s[i++] = ' ';
            continue;
        }
        if (ch < 0x80) {
            i++;
            continue;
        }
        size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
        if (i + len > n || !utf8_valid(s + i, len, NULL)) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}

void notify__copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--; /* never split a UTF-8 sequence */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

enum notify_outcome notify__finish(struct notify_result *res, enum notify_outcome o,
                                   int64_t start_ms, const char *const *secrets, const char *fmt,
                                   ...)
{
    res->outcome = o;
    res->elapsed_ms = notify__now_ms() - start_ms;
    /* Format in full, redact, then cut: cutting first could leave half a secret behind. */
    char tmp[2048] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
    }
    notify__redact(tmp, strlen(tmp), secrets);
    notify__one_line(tmp);
    size_t tl = strlen(tmp);
    while (tl > 0 && tmp[tl - 1] == ' ')
        tmp[--tl] = '\0';
    notify__copy_text(res->error, sizeof res->error, tmp);
    notify__redact(res->provider_id, strlen(res->provider_id), secrets);
    notify__one_line(res->provider_id);
    if (res->retry_after_ms > NOTIFY_RETRY_AFTER_MAX_MS)
        res->retry_after_ms = NOTIFY_RETRY_AFTER_MAX_MS;
    if (o != NOTIFY_RETRY)
        res->retry_after_ms = 0;
    return o;
}

/* ---- libcurl ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct notify_client *c = arg;
    size_t n = size * nmemb;
    size_t room = c->body.len < NOTIFY_BODY_MAX ? NOTIFY_BODY_MAX - c->body.len : 0;
    notify__buf_add(&c->body, ptr, n < room ? n : room);
    return n; /* the rest is read and dropped, so the server is not cut off mid-answer */
}

void notify__curl_prepare(struct notify_client *c, CURL *h, const char *protocols,
                          unsigned timeout_ms, unsigned connect_timeout_ms,
                          const struct notify_tls_config *tls)
{
    /* curl_easy_reset keeps the connection, DNS and TLS session caches: that is the reuse. */
    curl_easy_reset(h);
    notify__buf_reset(&c->body);
    c->errbuf[0] = '\0';
    if (connect_timeout_ms == 0)
        connect_timeout_ms = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS;
    if (connect_timeout_ms > timeout_ms)
        connect_timeout_ms = timeout_ms;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (tls != NULL && tls->ca_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file);
    if (tls != NULL && tls->ca_path[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAPATH, tls->ca_path);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "canary/" CANARY_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
}

bool notify__curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_LOGIN_DENIED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
        return false;
    default:
        /* Network trouble, timeouts, TLS handshakes cut short, a server that closed the
         * connection, out of memory: all may pass. Unknown codes are retried too: losing an
         * alert is worse than one more attempt. */
        return true;
    }
}

const char *notify__curl_error(const struct notify_client *c, CURLcode rc)
{
    return c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
}

void notify__url_origin(const char *url, char *out, size_t len)
{
    snprintf(out, len, "?");
    CURLU *u = curl_url();
    if (u == NULL)
        return;
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
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

bool notify__url_is_loopback(const char *url)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    char *host = NULL;
    bool loop = false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        loop = strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
               strncmp(host, "127.", 4) == 0;
    }
    curl_free(host);
    curl_url_cleanup(u);
    return loop;
}

bool notify__key_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}
