/* notify.h — delivering one notification over one channel: Twilio SMS, WhatsApp and voice
 * calls, signed webhooks, and e-mail over SMTP.
 *
 * This module is the last hop of ARCHITECTURE.md's notify stage. It knows nothing about
 * alerts' lifecycles, routing, the outbox or retries: the caller (the delivery thread) hands
 * it a finished message and a channel configuration, and gets back what happened, classified
 * the way the provider documents it:
 *
 *   NOTIFY_DELIVERED          the provider accepted the message (Twilio queued it, the webhook
 *                             receiver answered 2xx, the SMTP server took the DATA). Not
 *                             "read by a person": Twilio's later delivery status is not seen.
 *   NOTIFY_RETRY              a temporary failure (network error, timeout, HTTP 408/429/5xx,
 *                             SMTP 4xx); try again later, after retry_after_ms when it is set.
 *   NOTIFY_PERMANENT_FAILURE  the same message would fail again (invalid number, credentials
 *                             refused, HTTP 4xx, SMTP 5xx, a configuration error); retrying
 *                             cannot help, a person has to fix something.
 *
 * Every send function blocks for at most its timeout (plus a few milliseconds), fills a
 * struct notify_result and returns its outcome; it cannot fail in any other way. Result
 * messages are one line and never contain a secret (auth token, password, webhook secret):
 * every text that goes into them is scrubbed of the configured secrets.
 *
 * Threads: the functions are thread-safe as long as each thread uses its own notify_client
 * (a client holds a libcurl handle, and with it open connections, TLS sessions and DNS
 * answers, so a delivery thread that keeps its client reuses connections to Twilio or to
 * the SMTP server). Call notify_global_init() once before the first client is created.
 *
 * Memory: messages and configurations are borrowed for the duration of a call. A client owns
 * its buffers; results are plain values. Docs: docs/ALERTING.md. */
#ifndef CANARY_NOTIFY_NOTIFY_H
#define CANARY_NOTIFY_NOTIFY_H

#include "decide/alert.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct explanation;

enum notify_channel {
    NOTIFY_CHANNEL_SMS = 0,  /* Twilio Programmable Messaging */
    NOTIFY_CHANNEL_WHATSAPP, /* the same API, "whatsapp:" addresses */
    NOTIFY_CHANNEL_VOICE,    /* Twilio Programmable Voice: a call that speaks the text */
    NOTIFY_CHANNEL_WEBHOOK,  /* signed JSON POST */
    NOTIFY_CHANNEL_EMAIL,    /* SMTP */
};
#define NOTIFY_CHANNEL_COUNT 5

enum notify_outcome {
    NOTIFY_DELIVERED = 0,
    NOTIFY_RETRY,
    NOTIFY_PERMANENT_FAILURE,
};

/* One notification, ready to send. Every string is borrowed, NUL-terminated UTF-8, and may be
 * NULL where the channel does not use it. Which fields each channel reads:
 *   sms, whatsapp  to (E.164 "+4915112345678"; "whatsapp:" is added when missing), text
 *   voice          to, text (spoken; keep it short: explanation.short_text)
 *   webhook        json (the body, e.g. from notify_webhook_payload()), idempotency_key
 *   email          to (addr-spec "ops@example.com"), subject, text_long, html (optional:
 *                  with it the mail is multipart/alternative), idempotency_key */
struct notify_message {
    enum notify_channel channel;
    const char *to;              /* recipient address; unused by webhooks (URL in the config) */
    const char *subject;         /* e-mail subject / title */
    const char *text;            /* short text: SMS, WhatsApp, voice (<= 160 characters) */
    const char *text_long;       /* plain-text body of an e-mail */
    const char *html;            /* HTML body of an e-mail (optional) */
    const char *json;            /* webhook body */
    const char *idempotency_key; /* stable across retries of the same notification: the
                                    webhook's Idempotency-Key header, the e-mail's Message-ID.
                                    [A-Za-z0-9._:-] only, at most 128 bytes; NULL = none */
};

#define NOTIFY_URL_MAX    512
#define NOTIFY_SECRET_MAX 256
#define NOTIFY_NAME_MAX   128
#define NOTIFY_PATH_MAX   1024
#define NOTIFY_ADDR_MAX   256 /* an e-mail address or SMTP user name (RFC 5321: 254) */

/* TLS trust and timeouts shared by the channels. */
struct notify_tls_config {
    char ca_file[NOTIFY_PATH_MAX]; /* PEM bundle to trust instead of the system's; "" = system */
    char ca_path[NOTIFY_PATH_MAX]; /* directory of hashed CA certificates; "" = system */
};

/* Twilio: SMS, WhatsApp and voice. Docs: twilio.com/docs/messaging/api/message-resource,
 * twilio.com/docs/voice/api/call-resource. */
struct notify_twilio_config {
    char base_url[NOTIFY_URL_MAX];       /* "https://api.twilio.com"; plain http only to
                                            loopback (tests), never the token in clear */
    char account_sid[NOTIFY_NAME_MAX];   /* "AC..." (HTTP Basic user) */
    char auth_token[NOTIFY_SECRET_MAX];  /* secret (HTTP Basic password) */
    char from[NOTIFY_NAME_MAX];          /* SMS and voice caller id, E.164 */
    char whatsapp_from[NOTIFY_NAME_MAX]; /* WhatsApp sender, E.164 ("whatsapp:" optional) */
    char voice[NOTIFY_NAME_MAX];         /* <Say voice="...">, "alice" */
    char language[NOTIFY_NAME_MAX];      /* <Say language="...">, "" = the voice's default */
    unsigned timeout_ms;                 /* whole request; 0 = NOTIFY_DEFAULT_TIMEOUT_MS */
    unsigned connect_timeout_ms;         /* 0 = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS */
    struct notify_tls_config tls;
};

/* A webhook endpoint. Each request carries
 *   X-Canary-Timestamp: <unix seconds>
 *   X-Canary-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 * (notify_webhook_signature(); docs/ALERTING.md shows how receivers verify it). */
struct notify_webhook_config {
    char url[NOTIFY_URL_MAX];       /* http:// or https:// */
    char secret[NOTIFY_SECRET_MAX]; /* secret; "" = requests are not signed */
    unsigned timeout_ms;            /* 0 = NOTIFY_DEFAULT_TIMEOUT_MS */
    unsigned connect_timeout_ms;    /* 0 = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS */
    struct notify_tls_config tls;
};

/* An SMTP submission server. */
struct notify_smtp_config {
    char url[NOTIFY_URL_MAX];         /* "smtp://mail.example.com:587" (STARTTLS) or
                                         "smtps://mail.example.com:465" (TLS from the start) */
    bool require_starttls;            /* smtp://: fail (permanently) unless the server offers
                                         STARTTLS; false = use it when offered */
    char username[NOTIFY_ADDR_MAX];   /* "" = no AUTH */
    char password[NOTIFY_SECRET_MAX]; /* secret */
    char from[NOTIFY_ADDR_MAX];       /* envelope and header sender, "alerts@example.com" */
    char from_name[NOTIFY_NAME_MAX];  /* display name, "canary" ("" = none) */
    unsigned timeout_ms;              /* 0 = NOTIFY_DEFAULT_TIMEOUT_MS */
    unsigned connect_timeout_ms;      /* 0 = NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS */
    struct notify_tls_config tls;
};

/* Every channel's configuration, for notify_send(). */
struct notify_config {
    struct notify_twilio_config twilio;
    struct notify_webhook_config webhook;
    struct notify_smtp_config smtp;
};

#define NOTIFY_DEFAULT_TWILIO_URL         "https://api.twilio.com"
#define NOTIFY_DEFAULT_VOICE              "alice"
#define NOTIFY_DEFAULT_TIMEOUT_MS         15000u
#define NOTIFY_DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define NOTIFY_RETRY_AFTER_MAX_MS         (24 * 3600 * 1000LL)

/* Fills each config with its defaults (Twilio's URL and voice, STARTTLS required, the
 * default timeouts; everything else empty). */
void notify_twilio_config_init(struct notify_twilio_config *cfg);
void notify_webhook_config_init(struct notify_webhook_config *cfg);
void notify_smtp_config_init(struct notify_smtp_config *cfg);
void notify_config_init(struct notify_config *cfg);

#define NOTIFY_PROVIDER_ID_MAX 128
#define NOTIFY_ERROR_MAX       320

/* What one delivery attempt did. */
struct notify_result {
    enum notify_outcome outcome;
    int64_t retry_after_ms;                   /* > 0: the provider asked to wait this long
                                                 (HTTP Retry-After); 0 = not said */
    char provider_id[NOTIFY_PROVIDER_ID_MAX]; /* Twilio "SM..." / "CA...", the SMTP queue id
                                                 when the server names one; "" otherwise */
    long http_status;                         /* HTTP status, 0 when none (SMTP, network) */
    long provider_code;                       /* Twilio's error code (21211), or the SMTP
                                                 reply code of a refusal (550); 0 = none */
    char error[NOTIFY_ERROR_MAX];             /* one line, no secrets; "" when delivered
                                                 (but for a note on an odd answer) */
    int64_t elapsed_ms;                       /* time the attempt took */
};

/* Per-thread delivery context: a reusable libcurl handle (and so its connection cache) and
 * response buffers. Not thread-safe: one per thread. */
struct notify_client;

/* Initialises libcurl once for the process (safe to call more than once and from several
 * threads). Returns 0 or CANARY_EIO. */
int notify_global_init(void);

/* Creates a client. Returns NULL when out of memory or when libcurl cannot be initialised. */
struct notify_client *notify_client_new(void);

/* Frees a client and closes its connections. NULL is fine. */
void notify_client_free(struct notify_client *c);

/* Sends an SMS (channel sms), a WhatsApp message (whatsapp) or places a voice call (voice)
 * through Twilio's REST API:
 *   POST {base}/2010-04-01/Accounts/{sid}/Messages.json   To, From, Body
 *   POST {base}/2010-04-01/Accounts/{sid}/Calls.json      To, From, Twiml
 * HTTP Basic auth with the account SID and auth token. 201 with a "sid" is delivered; 429 and
 * 5xx (and network errors) are retried, honouring Retry-After; other 4xx — an invalid or
 * unverified number (21211, 21608), refused credentials (401, 20003), a wrong account (404) —
 * are permanent, with Twilio's error code in provider_code. Twilio warns that message and
 * call creation is not idempotent: a retry after a timeout or a 5xx may, rarely, deliver
 * twice. timeout_ms = 0 uses the config's. Returns res->outcome. */
enum notify_outcome notify_twilio_send(struct notify_client *c,
                                       const struct notify_twilio_config *cfg,
                                       const struct notify_message *m, unsigned timeout_ms,
                                       struct notify_result *res);

/* POSTs m->json to the webhook with Content-Type application/json, the signature headers
 * above and Idempotency-Key (when m->idempotency_key is set). 2xx is delivered; 408, 429,
 * 5xx and network errors are retried; any other status (3xx: redirects are not followed,
 * 4xx) is permanent. Returns res->outcome. */
enum notify_outcome notify_webhook_send(struct notify_client *c,
                                        const struct notify_webhook_config *cfg,
                                        const struct notify_message *m, unsigned timeout_ms,
                                        struct notify_result *res);

/* Sends an e-mail (RFC 5322: Date, Message-ID, From, To, Subject — RFC 2047-encoded when not
 * ASCII — MIME-Version; text/plain, or multipart/alternative text + HTML, base64 UTF-8) over
 * SMTP (RFC 5321) with STARTTLS as configured and AUTH when a username is set. The final 250
 * is delivered (provider_id is the queue id when the server says "queued as X" or "id=X").
 * A 4xx reply is retried, a 5xx reply is permanent (provider_code holds it); refused
 * credentials, STARTTLS required but not offered, an unverifiable certificate and invalid
 * addresses are permanent; network errors and timeouts are retried. Returns res->outcome. */
enum notify_outcome notify_smtp_send(struct notify_client *c, const struct notify_smtp_config *cfg,
                                     const struct notify_message *m, unsigned timeout_ms,
                                     struct notify_result *res);

/* Sends m over the channel it names, with that channel's part of cfg. */
enum notify_outcome notify_send(struct notify_client *c, const struct notify_config *cfg,
                                const struct notify_message *m, unsigned timeout_ms,
                                struct notify_result *res);

/* Webhook signatures. */
#define NOTIFY_SIGNATURE_HEX_LEN 64 /* hex digits of an HMAC-SHA256 */

/* HMAC-SHA256 (RFC 2104, FIPS 180-4) of data with key into out[32]. Returns 0 or CANARY_EIO
 * when libcrypto fails. */
int notify_hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
                       unsigned char out[32]);

/* The webhook signature: lower-case hex HMAC-SHA256(secret, "<timestamp>.<body>") into
 * hex[NOTIFY_SIGNATURE_HEX_LEN + 1] (the header value is "sha256=" followed by it). The
 * timestamp is the decimal Unix seconds sent in X-Canary-Timestamp. Returns 0 or CANARY_EIO. */
int notify_webhook_signature(const char *secret, int64_t timestamp_s, const char *body,
                             size_t body_len, char hex[NOTIFY_SIGNATURE_HEX_LEN + 1]);

/* A receiver's check, in constant time: true when header ("sha256=<hex>") is the signature of
 * (timestamp, body) and the timestamp is within tolerance_s of now_s (replay protection). */
bool notify_webhook_verify(const char *secret, const char *timestamp_header,
                           const char *signature_header, const char *body, size_t body_len,
                           int64_t now_s, int64_t tolerance_s);

/* The JSON body canary's webhooks carry (docs/ALERTING.md):
 *   {"type":"alert.opened","id":"<idempotency key>","sent_at":"<RFC 3339>",
 *    "alert":{"id":42,"device":..,"metric":..,"kind":..,"severity":..,"state":..,
 *             "opened_at":..,"updated_at":..,"value":..,"peak":..,"limit":..|null,
 *             "message":..},
 *    "explanation":{"title":..,"description":..,"action":..,"short":..}}
 * `event` is what happened (alert_action_name(): opened, escalated, resolved, ... or "test");
 * e may be NULL. Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *notify_webhook_payload(const struct alert *a, const struct explanation *e, const char *event,
                             const char *id, int64_t sent_ms);

const char *notify_channel_name(enum notify_channel ch); /* "sms", "whatsapp", ... */
const char *notify_outcome_name(enum notify_outcome o);  /* "delivered", "retry", ... */

/* Parses a channel name. Returns 0 or CANARY_EINVAL. */
int notify_channel_parse(const char *s, enum notify_channel *out);

#endif
