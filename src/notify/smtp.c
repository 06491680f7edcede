/* smtp.c — e-mail over SMTP through libcurl (notify.h).
 *
 * canary writes the message itself (RFC 5322 headers, RFC 2045/2046 MIME, RFC 2047 encoded
 * words for a non-ASCII subject or sender name) and libcurl speaks RFC 5321 with it: EHLO,
 * STARTTLS (RFC 3207) as configured, AUTH, MAIL FROM, RCPT TO, DATA (libcurl dot-stuffs the
 * body). Bodies are UTF-8 in base64, so no line of the message is long or starts with a dot,
 * whatever the text holds; header values are flattened to one line first, so no text can add
 * a header. Every message carries Auto-Submitted: auto-generated (RFC 3834) so that
 * vacation responders stay quiet.
 *
 * Replies (RFC 5321 §4.2.1): 4yz is a transient failure, retried; 5yz is permanent. libcurl
 * reports the code of the reply that ended the conversation (CURLINFO_RESPONSE_CODE); the
 * reply lines themselves are taken from libcurl's debug stream, to quote the server's reason
 * and to find the queue id in the final "250 2.0.0 Ok: queued as 4BQ2VB0ZxXz9sW1". */
#include "notify/notify_internal.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ADDRESS_MAX 254 /* RFC 5321 §4.5.3.1.3 path limit, less the brackets */
#define SUBJECT_MAX 256 /* bytes of subject text kept */
#define B64_LINE    76  /* RFC 2045 §6.8 */

/* An addr-spec canary accepts: local@domain, printable ASCII without spaces, brackets,
 * quotes or separators (no quoted local parts, no source routes; IDNs in xn-- form). */
static bool address_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > ADDRESS_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7F || strchr("<>()[]\\,;:\"", ch) != NULL)
            return false;
    }
    return true;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof r)
        bytes = sizeof r;
    if (RAND_bytes(r, (int)bytes) != 1) {
        /* No entropy: fall back to the clock; uniqueness, not secrecy, is what matters. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (size_t i = 0; i < bytes; i++)
            r[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (ts.tv_sec >> (i % 8)) ^ i);
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = digits[r[i] >> 4];
        out[2 * i + 1] = digits[r[i] & 15];
    }
    out[2 * bytes] = '\0';
}

/* RFC 5322 §3.3 date in UTC, English names whatever the locale. */
static void rfc5322_date(char *out, size_t len, time_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool plain_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7F)
            return false;
    }
    return strstr(s, "=?") == NULL; /* would read as the start of an encoded word */
}

/* Appends text as RFC 2047 "B" encoded words, split between UTF-8 characters, each line
 * (the first starts at column col) within the 76 characters RFC 2047 §2 allows. Returns the
 * column after the last word. */
static size_t encoded_words(struct notify_buf *b, const char *s, size_t col)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (i > 0) {
            notify__buf_adds(b, "\r\n "); /* fold: the next word on a continuation line */
            col = 1;
        }
        /* "=?UTF-8?B?" + base64 + "?=": 12 characters around 4 per 3 bytes. */
        size_t room = col + 12 + 4 < 76 ? (76 - col - 12) / 4 * 3 : 3;
        size_t take = n - i > room ? room : n - i;
        while (i + take < n && take > 0 && ((unsigned char)s[i + take] & 0xC0) == 0x80)
            take--; /* never split a character across words (RFC 2047 §5) */
        if (take == 0)
            take = 1;
        size_t before = b->len;
        notify__buf_adds(b, "=?UTF-8?B?");
        notify__base64(b, s + i, take);
        notify__buf_adds(b, "?=");
        col += b->len - before;
        i += take;
    }
    return col;
}

/* Appends "Name: value\r\n" for unstructured text: flattened to one line, cut to max bytes,
 * plain when printable ASCII (folded at spaces past 78 columns), encoded words otherwise. */
static void header_text(struct notify_buf *b, const char *name, const char *value, size_t max)
{
    char text[SUBJECT_MAX + 1];
    notify__copy_text(text, max + 1 < sizeof text ? max + 1 : sizeof text, value);
    notify__one_line(text);
    notify__buf_addf(b, "%s: ", name);
    size_t col = strlen(name) + 2;
    if (plain_ascii(text)) {
        for (const char *p = text; *p != '\0';) {
            const char *sp = strchr(p + 1, ' ');
            size_t wl = sp != NULL ? (size_t)(sp - p) : strlen(p);
            if (col + wl > 78 && p != text && *p == ' ') {
                notify__buf_adds(b, "\r\n"); /* fold: the space starts the next line */
                col = 0;
            }
            notify__buf_add(b, p, wl);
            col += wl;
            p += wl;
        }
    } else {
        encoded_words(b, text, col);
    }
    notify__buf_adds(b, "\r\n");
}

/* Appends the From header: an optional display name (quoted string, or encoded words when not
 * ASCII) and the address, folded before the address when the line would grow too long. */
static void header_from(struct notify_buf *b, const char *name, const char *addr)
{
    char text[NOTIFY_NAME_MAX];
    notify__copy_text(text, sizeof text, name);
    notify__one_line(text);
    notify__buf_adds(b, "From: ");
    size_t col = 6;
    if (text[0] != '\0') {
        size_t before = b->len;
        if (plain_ascii(text)) {
            notify__buf_adds(b, "\"");
            for (const char *p = text; *p != '\0'; p++) {
                if (*p == '"' || *p == '\\')
                    notify__buf_adds(b, "\\");
                notify__buf_add(b, p, 1);
            }
            notify__buf_adds(b, "\"");
            col += b->len - before;
        } else {
            col = encoded_words(b, text, col);
        }
        if (col + 1 + strlen(addr) + 2 > 78)
            notify__buf_adds(b, "\r\n");
        notify__buf_adds(b, " ");
    }
    notify__buf_addf(b, "<%s>\r\n", addr);
}

/* Appends text as base64 in lines of 76 characters. */
static void body_base64(struct notify_buf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += B64_LINE / 4 * 3) {
        size_t take = n - i > B64_LINE / 4 * 3 ? B64_LINE / 4 * 3 : n - i;
        notify__base64(b, s + i, take);
        notify__buf_adds(b, "\r\n");
    }
}

/* The key as dot-atom-text (RFC 5322 §3.2.3): ':' is not atext, and dots may neither repeat
 * nor end the id. The key is valid (notify__key_valid), so this is a one-to-one-ish map. */
static void message_id_left(char *out, size_t len, const char *key)
{
    size_t n = 0;
    for (const char *p = key; *p != '\0' && n + 1 < len; p++) {
        char ch = *p;
        if (ch == ':')
            ch = '=';
        else if (ch == '.' && (n == 0 || out[n - 1] == '.' || p[1] == '\0'))
            ch = '_';
        out[n++] = ch;
    }
    out[n] = '\0';
}

static void build_message(struct notify_buf *b, const struct notify_smtp_config *cfg,
                          const struct notify_message *m, const char *text)
{
    char date[64], rnd[33], boundary[64];
    rfc5322_date(date, sizeof date, time(NULL));
    const char *domain = strchr(cfg->from, '@') + 1;

    notify__buf_reset(b);
    notify__buf_addf(b, "Date: %s\r\n", date);
    header_from(b, cfg->from_name, cfg->from);
    notify__buf_addf(b, "To: <%s>\r\n", m->to);
    header_text(b, "Subject", m->subject != NULL && m->subject[0] ? m->subject : "canary alert",
                SUBJECT_MAX);
    /* A stable Message-ID for one notification: a retry that reaches the mailbox twice can be
     * recognised as the same message. */
    random_hex(rnd, 16);
    char id[160];
    message_id_left(id, sizeof id, m->idempotency_key != NULL ? m->idempotency_key : rnd);
    notify__buf_addf(b, "Message-ID: <canary.%s@%s>\r\n", id, domain);
    notify__buf_adds(b, "MIME-Version: 1.0\r\n");
    notify__buf_adds(b, "Auto-Submitted: auto-generated\r\n");
    notify__buf_adds(b, "User-Agent: canary/" CANARY_VERSION "\r\n");
    if (m->html == NULL || m->html[0] == '\0') {
        notify__buf_adds(b, "Content-Type: text/plain; charset=utf-8\r\n"
                            "Content-Transfer-Encoding: base64\r\n\r\n");
        body_base64(b, text);
        return;
    }
    /* "=_" never occurs in base64, so the boundary cannot occur in a part. */
    random_hex(rnd, 12);
    snprintf(boundary, sizeof boundary, "=_canary_%s", rnd);
    notify__buf_addf(b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n",
                     boundary);
    notify__buf_addf(b,
                     "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n",
                     boundary);
    body_base64(b, text);
    notify__buf_addf(b,
                     "--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n",
                     boundary);
    body_base64(b, m->html);
    notify__buf_addf(b, "--%s--\r\n", boundary);
}

static size_t on_read(char *buffer, size_t size, size_t nitems, void *arg)
{
    struct notify_client *c = arg;
    size_t room = size * nitems;
    size_t left = c->out.len - c->out_pos;
    size_t n = left < room ? left : room;
    memcpy(buffer, c->out.data + c->out_pos, n);
    c->out_pos += n;
    return n;
}

/* Server replies as libcurl sees them (CURLINFO_HEADER_IN, one or more lines). */
struct smtp_call {
    struct notify_client *c;
    const char *const *secrets;
};

static void on_reply_line(struct smtp_call *call, char *line)
{
    struct notify_client *c = call->c;
    if (strlen(line) < 3 || line[0] < '1' || line[0] > '5')
        return;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = line[3] == ' ' || line[3] == '\0'; /* "250-..." continues a reply */
    notify__redact(line, strlen(line), call->secrets);
    notify__one_line(line);
    if (code == 354) {
        c->seen_354 = true;
        return;
    }
    if (code >= 400)
        notify__copy_text(c->reply_error, sizeof c->reply_error, line);
    if (c->seen_354 && last && c->reply_data[0] == '\0')
        notify__copy_text(c->reply_data, sizeof c->reply_data, line);
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)h;
    if (type != CURLINFO_HEADER_IN)
        return 0;
    char line[1024];
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            line[n] = '\0';
            if (n > 0 && line[n - 1] == '\r')
                line[n - 1] = '\0';
            on_reply_line(arg, line);
            n = 0;
        } else if (n + 1 < sizeof line) {
            line[n++] = data[i];
        }
    }
    if (n > 0) {
        line[n] = '\0';
        on_reply_line(arg, line);
    }
    return 0;
}

/* The queue id of "250 2.0.0 Ok: queued as ABC123" (Postfix) or "250 OK id=1abc-00" (Exim). */
static void queue_id(const char *reply, char *out, size_t len)
{
    out[0] = '\0';
    const char *p = strstr(reply, "queued as ");
    if (p != NULL)
        p += 10;
    else if ((p = strstr(reply, "id=")) != NULL)
        p += 3;
    else
        return;
    size_t n = 0;
    while (n + 1 < len &&
           (p[n] == '-' || p[n] == '.' || p[n] == '_' || (p[n] >= '0' && p[n] <= '9') ||
            (p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z'))) {
        out[n] = p[n];
        n++;
    }
    out[n] = '\0';
}

/* FNV-1a over what a connection's security depends on. */
static uint64_t smtp_policy(const struct notify_smtp_config *cfg)
{
    const char *parts[] = {cfg->url, cfg->require_starttls ? "tls" : "try", cfg->tls.ca_file,
                           cfg->tls.ca_path};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p != '\0'; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xFF) * 1099511628211ULL; /* separator */
    }
    return h | 1; /* never 0, the value of a new client */
}

enum notify_outcome notify_smtp_send(struct notify_client *c, const struct notify_smtp_config *cfg,
                                     const struct notify_message *m, unsigned timeout_ms,
                                     struct notify_result *res)
{
    int64_t start = notify__now_ms();
    notify__result_start(res);

    /* Secrets: the password, and the forms AUTH PLAIN and AUTH LOGIN put on the wire. */
    notify__buf_reset(&c->scrap);
    char plain[2 * NOTIFY_SECRET_MAX + 2 * NOTIFY_NAME_MAX] = "";
    char login[2 * NOTIFY_SECRET_MAX] = "";
    if (cfg->password[0] != '\0') {
        size_t ul = strlen(cfg->username), pl = strlen(cfg->password);
        notify__buf_add(&c->scrap, "", 1);
        notify__buf_add(&c->scrap, cfg->username, ul);
        notify__buf_add(&c->scrap, "", 1);
        notify__buf_add(&c->scrap, cfg->password, pl);
        size_t raw = c->scrap.len;
        notify__base64(&c->scrap, c->scrap.data, raw);
        if (!c->scrap.failed)
            notify__copy_text(plain, sizeof plain, c->scrap.data + raw);
        notify__buf_reset(&c->scrap);
        notify__base64(&c->scrap, cfg->password, pl);
        if (!c->scrap.failed)
            notify__copy_text(login, sizeof login, c->scrap.data);
    }
    const char *secrets[] = {cfg->password, plain, login, NULL};
    char origin[NOTIFY_URL_MAX];
    notify__url_origin(cfg->url, origin, sizeof origin);

    if (strncmp(cfg->url, "smtp://", 7) != 0 && strncmp(cfg->url, "smtps://", 8) != 0)
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "smtp: the server URL must be smtp://host:587 or smtps://host:465");
    if (!address_ok(cfg->from))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "smtp: no valid sender address configured (local@domain, ASCII)");
    if (m->to == NULL || !address_ok(m->to))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "smtp: the recipient must be an address local@domain (ASCII, no "
                              "spaces, brackets or control characters)");
    const char *text = m->text_long != NULL && m->text_long[0] ? m->text_long : m->text;
    if (text == NULL || text[0] == '\0')
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets, "smtp: empty body");
    if (m->idempotency_key != NULL && !notify__key_valid(m->idempotency_key))
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "smtp: invalid idempotency key (1 to 128 of A-Z a-z 0-9 . _ : -)");

    build_message(&c->out, cfg, m, text);
    if (c->out.failed)
        return notify__finish(res, NOTIFY_RETRY, start, secrets, "smtp: out of memory");
    c->out_pos = 0;
    c->seen_354 = false;
    c->reply_error[0] = '\0';
    c->reply_data[0] = '\0';

    char from[NOTIFY_ADDR_MAX + 3], to[ADDRESS_MAX + 3];
    snprintf(from, sizeof from, "<%s>", cfg->from);
    snprintf(to, sizeof to, "<%s>", m->to);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    if (rcpt == NULL)
        return notify__finish(res, NOTIFY_RETRY, start, secrets, "smtp: out of memory");

    unsigned timeout = notify__timeout(timeout_ms, cfg->timeout_ms);
    /* libcurl may reuse a cached connection without checking that it was made under the same
     * STARTTLS policy: a new policy (or server, or trust store) gets a new handle, and with it
     * an empty connection cache. */
    uint64_t policy = smtp_policy(cfg);
    if (policy != c->smtp_policy) {
        CURL *fresh = curl_easy_init();
        if (fresh == NULL) {
            curl_slist_free_all(rcpt);
            return notify__finish(res, NOTIFY_RETRY, start, secrets, "smtp: out of memory");
        }
        curl_easy_cleanup(c->smtp);
        c->smtp = fresh;
        c->smtp_policy = policy;
    }
    CURL *h = c->smtp;
    notify__curl_prepare(c, h, "smtp,smtps", timeout, cfg->connect_timeout_ms, &cfg->tls);
    struct smtp_call call = {c, secrets};
    curl_easy_setopt(h, CURLOPT_URL, cfg->url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, c);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->out.len);
    /* smtps:// is TLS from the first byte; smtp:// upgrades with STARTTLS. */
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     (long)(cfg->require_starttls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    if (cfg->username[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->password);
    }
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &call);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_PASSWORD, "");
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, NULL);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, NULL);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_slist_free_all(rcpt);

    if (rc == CURLE_OK) {
        queue_id(c->reply_data, res->provider_id, sizeof res->provider_id);
        return notify__finish(res, NOTIFY_DELIVERED, start, secrets, NULL);
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    char err[CURL_ERROR_SIZE];
    notify__copy_text(err, sizeof err, notify__curl_error(c, rc));
    if (rc == CURLE_USE_SSL_FAILED)
        return notify__finish(res, NOTIFY_PERMANENT_FAILURE, start, secrets,
                              "smtp %s: the server does not offer STARTTLS, which is required "
                              "(%s)",
                              origin, err);
    if (code >= 400 && code < 600) {
        res->provider_code = code;
        /* libcurl calls a refusal at the end of DATA a "weird server reply": say what it is. */
        const char *what = c->seen_354 ? "message refused" : err;
        return notify__finish(res, code < 500 ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE, start,
                              secrets, "smtp %s: %s%s%s", origin, what,
                              c->reply_error[0] ? ": " : "", c->reply_error);
    }
    return notify__finish(res, notify__curl_retryable(rc) ? NOTIFY_RETRY : NOTIFY_PERMANENT_FAILURE,
                          start, secrets, "smtp %s: %s", origin, err);
}
