/* notify_internal.h — what the channel files of src/notify/ share: the client's insides, the
 * libcurl set-up every request gets, the classification of transport errors, and the
 * result helpers that keep secrets and control characters out of error messages.
 * Not for use outside src/notify/. */
#ifndef CANARY_NOTIFY_INTERNAL_H
#define CANARY_NOTIFY_INTERNAL_H

#include "notify/notify.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFY_BODY_MAX  (64 * 1024) /* response bytes kept; the rest is read and dropped */
#define NOTIFY_REPLY_MAX 256         /* one SMTP reply line */

/* A growable byte buffer owned by a client (reused from call to call). */
struct notify_buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len, cap;
    bool failed; /* an allocation failed: the content is incomplete */
};

struct notify_client {
    CURL *curl;           /* HTTP(S): Twilio and webhooks */
    CURL *smtp;           /* SMTP, a handle of its own: see smtp_policy */
    uint64_t smtp_policy; /* hash of the SMTP URL and TLS settings its connections were made
                             under; a change drops them (a connection made without STARTTLS
                             must never carry a message that requires it) */
    char errbuf[CURL_ERROR_SIZE];
    struct notify_buf body;  /* the response body (at most NOTIFY_BODY_MAX bytes) */
    struct notify_buf out;   /* the request body being built (form, e-mail) */
    struct notify_buf scrap; /* scratch (base64 of credentials, Twiml) */
    size_t out_pos;          /* upload position in out (SMTP) */
    /* SMTP conversation, filled by the debug callback. */
    char reply_error[NOTIFY_REPLY_MAX]; /* the last 4xx/5xx reply line */
    char reply_data[NOTIFY_REPLY_MAX];  /* the reply to the end of DATA */
    bool seen_354;                      /* DATA was accepted: the next 2xx/4xx/5xx ends it */
};

/* Buffer helpers: append bytes / formatted text, keeping a NUL after the content. On
 * allocation failure `failed` is set and later appends do nothing. */
void notify__buf_reset(struct notify_buf *b);
void notify__buf_free(struct notify_buf *b);
void notify__buf_add(struct notify_buf *b, const void *p, size_t n);
void notify__buf_adds(struct notify_buf *b, const char *s);
void notify__buf_addf(struct notify_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets the result at the start of an attempt. */
void notify__result_start(struct notify_result *res);

/* Ends an attempt: sets outcome and elapsed time, formats the error message (fmt may be NULL
 * when delivered), masks every occurrence of each non-empty secret (NULL-terminated list),
 * flattens it to one line and cuts it to fit. Returns the outcome. */
enum notify_outcome notify__finish(struct notify_result *res, enum notify_outcome o,
                                   int64_t start_ms, const char *const *secrets, const char *fmt,
                                   ...) __attribute__((format(printf, 5, 6)));

/* Overwrites with '*' every occurrence of each secret in s[0..len), and a secret's first
 * bytes (4 or more) when s ends with them (a text cut short). In place, any length: call it on
 * a whole response before taking an excerpt of it. */
void notify__redact(char *s, size_t len, const char *const *secrets);

/* Control characters become spaces and invalid UTF-8 bytes '?', in place: one safe line. */
void notify__one_line(char *s);

/* Copies src into dst[cap], cut at a UTF-8 character boundary. */
void notify__copy_text(char *dst, size_t cap, const char *src);

/* Resets handle h (c->curl or c->smtp) and applies what every request needs: the timeouts,
 * no signals (threads), the error buffer, the allowed protocols ("http,https" or
 * "smtp,smtps"), the trust store, no redirects, and the response body into c->body. */
void notify__curl_prepare(struct notify_client *c, CURL *h, const char *protocols,
                          unsigned timeout_ms, unsigned connect_timeout_ms,
                          const struct notify_tls_config *tls);

/* True when a libcurl failure is worth retrying (network, timeouts, TLS handshake); false for
 * configuration errors (bad URL, unsupported protocol, certificate that does not verify,
 * credentials refused, STARTTLS required and missing). */
bool notify__curl_retryable(CURLcode rc);

/* The error text of a failed transfer: the error buffer when set, else curl_easy_strerror. */
const char *notify__curl_error(const struct notify_client *c, CURLcode rc);

/* Writes "scheme://host[:port]" of url into out (never the path or the query, which may hold
 * tokens; never userinfo). "?" when the URL does not parse. */
void notify__url_origin(const char *url, char *out, size_t len);

/* True when the URL's host is a loopback address or "localhost". */
bool notify__url_is_loopback(const char *url);

/* Standard base64 (RFC 4648) of p[0..n) appended to b, without line breaks. */
void notify__base64(struct notify_buf *b, const void *p, size_t n);

/* True when s is a valid idempotency key: 1..128 bytes of [A-Za-z0-9._:-]. */
bool notify__key_valid(const char *s);

/* Milliseconds of the monotonic clock. */
int64_t notify__now_ms(void);

/* The timeout in effect: the call's when not 0, else the config's, else the default. */
unsigned notify__timeout(unsigned call_ms, unsigned cfg_ms);

#endif
