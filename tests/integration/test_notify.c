/* test_notify.c — the delivery channels (src/notify/) against local fakes on loopback: a fake
 * Twilio (fake_twilio.h), a webhook receiver that verifies signatures (fake_webhook.h) and a
 * small SMTP server (fake_smtp.h).
 *
 * For each channel: delivery with the provider's id and exactly the request the provider
 * expects (path, auth, form fields, "whatsapp:" prefixes, well-formed Twiml; signature and
 * timestamp; envelope, headers, RFC 2047 subject, MIME parts); the classification of every
 * failure as retry or permanent, as each provider documents it (Twilio's error codes, 429
 * with Retry-After, 5xx and non-JSON gateways; webhook statuses; SMTP 4xx/5xx replies,
 * refused credentials, STARTTLS required but not offered); connection refused and servers
 * that never answer (RETRY within the timeout); invalid input refused before any network
 * traffic; connection reuse and concurrent clients. Every result's text is checked for the
 * auth token, the password, the webhook secret and their encoded forms — including answers
 * from servers that quote them back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_http.h"
#include "fake_smtp.h"
#include "fake_twilio.h"
#include "fake_webhook.h"
#include "harness.h"
#include "notify/explain.h"
#include "notify/notify.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SID      "ACf00dcafe0123456789abcdef01234567"
#define TOKEN    "tw_t0ken_5ecret_d0_not_leak"
#define SECRET   "whsec_5ecret_d0_not_leak"
#define USER     "alerts@example.org"
#define PASSWORD "smtp-pa55w0rd-d0-not-leak"
#define FROM_NR  "+15005550006"
#define TO_NR    "+4915112345678"

static struct fake_twilio twilio;
static struct fake_webhook hook;
static struct fake_smtp smtp;
static struct notify_client *client;
static char basic_b64[256]; /* the Authorization header's credential */
static char plain_b64[256]; /* AUTH PLAIN's */
static char login_b64[128]; /* AUTH LOGIN's password */

static void b64(const char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(notify_global_init(), 0);
    fake_twilio_start(&twilio, SID, TOKEN);
    fake_webhook_start(&hook, SECRET);
    fake_smtp_start(&smtp, USER, PASSWORD);
    client = notify_client_new();
    assert_non_null(client);
    b64(SID ":" TOKEN, strlen(SID ":" TOKEN), basic_b64);
    static const char plain[] = "\0" USER "\0" PASSWORD;
    b64(plain, sizeof plain - 1, plain_b64);
    b64(PASSWORD, strlen(PASSWORD), login_b64);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    notify_client_free(client);
    fake_smtp_stop(&smtp);
    fake_webhook_stop(&hook);
    fake_twilio_stop(&twilio);
    return 0;
}

/* No secret, in any form, in what a result says. */
static void assert_no_secret(const struct notify_result *r)
{
    static const char *const needles[] = {TOKEN, SECRET, PASSWORD, "5ecret", "pa55w0rd"};
    const char *texts[] = {r->error, r->provider_id};
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
            if (strstr(texts[t], needles[i]) != NULL)
                fail_msg("secret \"%s\" in result text: %s", needles[i], texts[t]);
        }
        if (strstr(texts[t], basic_b64) || strstr(texts[t], plain_b64) ||
            strstr(texts[t], login_b64))
            fail_msg("encoded credentials in result text: %s", texts[t]);
        for (const char *p = texts[t]; *p; p++)
            assert_true((unsigned char)*p >= 0x20 && *p != 0x7F); /* one line */
    }
}

static void expect(const struct notify_result *r, enum notify_outcome o)
{
    if (getenv("NOTIFY_PRINT") != NULL) /* how the results read, for the docs */
        printf("%-17s http %3ld code %5ld retry %6lld ms  %s%s\n", notify_outcome_name(r->outcome),
               r->http_status, r->provider_code, (long long)r->retry_after_ms, r->provider_id,
               r->error);
    assert_no_secret(r);
    if (r->outcome != o)
        fail_msg("outcome %s, expected %s (HTTP %ld, code %ld: %s)",
                 notify_outcome_name(r->outcome), notify_outcome_name(o), r->http_status,
                 r->provider_code, r->error);
    if (o == NOTIFY_DELIVERED)
        assert_string_equal(r->error, "");
    else
        assert_true(r->error[0] != '\0');
}

/* ---- Twilio ---- */

static void twilio_config(struct notify_twilio_config *cfg)
{
    notify_twilio_config_init(cfg);
    snprintf(cfg->base_url, sizeof cfg->base_url, "%s", twilio.http.base_url);
    snprintf(cfg->account_sid, sizeof cfg->account_sid, "%s", SID);
    snprintf(cfg->auth_token, sizeof cfg->auth_token, "%s", TOKEN);
    snprintf(cfg->from, sizeof cfg->from, "%s", FROM_NR);
    snprintf(cfg->whatsapp_from, sizeof cfg->whatsapp_from, "+14155238886");
}

static void sms(const struct notify_twilio_config *cfg, enum notify_channel ch, const char *to,
                const char *text, unsigned timeout_ms, struct notify_result *r)
{
    struct notify_message m = {.channel = ch, .to = to, .text = text};
    enum notify_outcome o = notify_twilio_send(client, cfg, &m, timeout_ms, r);
    assert_int_equal(o, r->outcome);
}

static void test_twilio_sms_delivered(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    const char *text = "Gas leak suspected in Küche: methane at 4,800 ppm & rising (100%?) = "
                       "a+b; call +49 30 112 now!";
    struct notify_result r;
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, text, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    assert_int_equal(r.http_status, 201);
    assert_int_equal(strlen(r.provider_id), 34);
    assert_memory_equal(r.provider_id, "SM", 2);
    assert_int_equal(r.retry_after_ms, 0);

    struct fake_twilio_request q;
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Messages.json");
    assert_string_equal(q.user, SID);
    assert_string_equal(q.password, TOKEN);
    assert_string_equal(q.content_type, "application/x-www-form-urlencoded");
    assert_string_equal(q.to, TO_NR);
    assert_string_equal(q.from, FROM_NR);
    assert_string_equal(q.body, text);

    /* A trailing slash on the base URL changes nothing. */
    strcat(cfg.base_url, "/");
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "again", 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Messages.json");
}

static void test_twilio_whatsapp(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    struct notify_result r;
    struct fake_twilio_request q;
    sms(&cfg, NOTIFY_CHANNEL_WHATSAPP, TO_NR, "Fire suspected in Workshop", 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Messages.json");
    assert_string_equal(q.to, "whatsapp:" TO_NR);
    assert_string_equal(q.from, "whatsapp:+14155238886");
    assert_string_equal(q.body, "Fire suspected in Workshop");

    /* Already prefixed: not twice. No WhatsApp sender: the SMS number. */
    cfg.whatsapp_from[0] = '\0';
    sms(&cfg, NOTIFY_CHANNEL_WHATSAPP, "whatsapp:" TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.to, "whatsapp:" TO_NR);
    assert_string_equal(q.from, "whatsapp:" FROM_NR);
}

static void test_twilio_voice(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    const char *text = "Fire <suspected> in \"Lab\" & 'Store' ]]> now";
    struct notify_result r;
    sms(&cfg, NOTIFY_CHANNEL_VOICE, TO_NR, text, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    assert_memory_equal(r.provider_id, "CA", 2);
    assert_int_equal(strlen(r.provider_id), 34);

    struct fake_twilio_request q;
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Calls.json");
    assert_string_equal(q.to, TO_NR);
    assert_string_equal(q.from, FROM_NR);
    assert_true(q.twiml_ok);
    assert_string_equal(q.say_voice, "alice");
    char twice[512];
    snprintf(twice, sizeof twice, "%s|%s", text, text); /* said twice, a pause between */
    assert_string_equal(q.say, twice);
    assert_non_null(strstr(q.twiml, "<Pause length=\"1\"/>"));

    /* Control characters are not allowed in XML: they become spaces, the Twiml stays valid. */
    sms(&cfg, NOTIFY_CHANNEL_VOICE, TO_NR, "line\x01one\nline two", 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    fake_twilio_last(&twilio, &q);
    assert_true(q.twiml_ok);
    assert_string_equal(q.say, "line one line two|line one line two");
}

static void test_twilio_errors(void **state)
{
    (void)state;
    static const struct {
        const char *to;
        enum notify_outcome outcome;
        long http, code;
        int64_t retry_after_ms;
        const char *says;
    } cases[] = {
        {"+15005550001", NOTIFY_PERMANENT_FAILURE, 400, 21211, 0, "not a valid phone number"},
        {"+15005550002", NOTIFY_PERMANENT_FAILURE, 400, 21612, 0, "not currently reachable"},
        {"+15005550004", NOTIFY_PERMANENT_FAILURE, 400, 21610, 0, "unsubscribed"},
        {"+15005550009", NOTIFY_PERMANENT_FAILURE, 400, 21614, 0, "mobile number"},
        {"+15005550608", NOTIFY_PERMANENT_FAILURE, 400, 21608, 0, "unverified"},
        {"+15005550429", NOTIFY_RETRY, 429, 20429, 7000, "Too Many Requests"},
        {"+15005550500", NOTIFY_RETRY, 500, 20500, 0, "Internal Server Error"},
        {"+15005550503", NOTIFY_RETRY, 503, 0, 0, "503 Service Unavailable"},
        {"+15005550666", NOTIFY_PERMANENT_FAILURE, 400, 21999, 0, "Proxy refused"},
    };
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    for (int ch = NOTIFY_CHANNEL_SMS; ch <= NOTIFY_CHANNEL_VOICE; ch++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct notify_result r;
            sms(&cfg, (enum notify_channel)ch, cases[i].to, "Gas leak", 0, &r);
            expect(&r, cases[i].outcome);
            assert_int_equal(r.http_status, cases[i].http);
            assert_int_equal(r.provider_code, cases[i].code);
            assert_int_equal(r.retry_after_ms, cases[i].retry_after_ms);
            assert_string_equal(r.provider_id, "");
            if (strstr(r.error, cases[i].says) == NULL)
                fail_msg("%s: \"%s\" not in \"%s\"", cases[i].to, cases[i].says, r.error);
            if (cases[i].code != 0) {
                char code[32];
                snprintf(code, sizeof code, "error %ld", cases[i].code);
                assert_non_null(strstr(r.error, code));
            }
        }
    }
}

static void test_twilio_credentials_and_account(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    struct notify_result r;
    snprintf(cfg.auth_token, sizeof cfg.auth_token, "wrong-token");
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(r.http_status, 401);
    assert_int_equal(r.provider_code, 20003);
    assert_null(strstr(r.error, "wrong-token"));

    /* A base URL with a path: the resource is not found, permanently. */
    twilio_config(&cfg);
    snprintf(cfg.base_url, sizeof cfg.base_url, "%s/v1", twilio.http.base_url);
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(r.http_status, 404);
    assert_int_equal(r.provider_code, 20404);
}

static void test_twilio_network(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    twilio_config(&cfg);
    struct notify_result r;

    /* Nothing listening. */
    snprintf(cfg.base_url, sizeof cfg.base_url, "http://127.0.0.1:%u", fake_closed_port());
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_RETRY);
    assert_int_equal(r.http_status, 0);
    assert_non_null(strstr(r.error, "127.0.0.1"));

    /* A server that takes the request and never answers: RETRY once the timeout is up. */
    twilio_config(&cfg);
    sms(&cfg, NOTIFY_CHANNEL_SMS, "+15005550777", "x", 800, &r);
    expect(&r, NOTIFY_RETRY);
    assert_true(r.elapsed_ms >= 700);
    assert_true(r.elapsed_ms < 3000);
    assert_non_null(strstr(r.error, "imed out"));

    /* The configured timeout applies when the call gives none. */
    cfg.timeout_ms = 600;
    sms(&cfg, NOTIFY_CHANNEL_VOICE, "+15005550777", "x", 0, &r);
    expect(&r, NOTIFY_RETRY);
    assert_true(r.elapsed_ms >= 500 && r.elapsed_ms < 3000);
}

static void test_twilio_refused_before_sending(void **state)
{
    (void)state;
    struct notify_twilio_config cfg;
    struct notify_result r;
    struct fake_twilio_request q;
    int before = fake_twilio_last(&twilio, &q);

    twilio_config(&cfg);
    snprintf(cfg.base_url, sizeof cfg.base_url, "http://api.twilio.example.com");
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_non_null(strstr(r.error, "https"));

    twilio_config(&cfg);
    sms(&cfg, NOTIFY_CHANNEL_SMS, "", "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    sms(&cfg, NOTIFY_CHANNEL_SMS, "+49151\r\nX-Evil: 1", "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    sms(&cfg, NOTIFY_CHANNEL_EMAIL, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    cfg.account_sid[0] = '\0';
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    twilio_config(&cfg);
    snprintf(cfg.account_sid, sizeof cfg.account_sid, "AC/../../x");
    sms(&cfg, NOTIFY_CHANNEL_SMS, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    twilio_config(&cfg);
    cfg.from[0] = '\0';
    sms(&cfg, NOTIFY_CHANNEL_VOICE, TO_NR, "x", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);

    assert_int_equal(fake_twilio_last(&twilio, &q), before); /* nothing reached the fake */
}

/* ---- webhooks ---- */

static void webhook_config(struct notify_webhook_config *cfg)
{
    notify_webhook_config_init(cfg);
    snprintf(cfg->url, sizeof cfg->url, "%s", hook.url);
    snprintf(cfg->secret, sizeof cfg->secret, "%s", SECRET);
}

static char *payload(void)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 42;
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.opened_ms = now_ms();
    a.updated_ms = a.opened_ms;
    a.value = 4800;
    a.peak = 4800;
    a.limit = 1000;
    snprintf(a.message, sizeof a.message, "Gas leak suspected at kitchen-1: Gas 4800 ppm");
    struct explain_context ctx;
    explain_context_init(&ctx);
    explain_context_from_alert(&ctx, &a);
    ctx.location = "Küche \"Nord\"";
    struct explanation e;
    explain_alert(&ctx, &e);
    char *s = notify_webhook_payload(&a, &e, "opened", "n-42-1", now_ms());
    assert_non_null(s);
    return s;
}

static void hook_send(const struct notify_webhook_config *cfg, const char *json, const char *key,
                      unsigned timeout_ms, struct notify_result *r)
{
    struct notify_message m = {
        .channel = NOTIFY_CHANNEL_WEBHOOK, .json = json, .idempotency_key = key};
    enum notify_outcome o = notify_webhook_send(client, cfg, &m, timeout_ms, r);
    assert_int_equal(o, r->outcome);
}

static void test_webhook_delivered(void **state)
{
    (void)state;
    struct notify_webhook_config cfg;
    webhook_config(&cfg);
    char *json = payload();
    struct notify_result r;
    fake_webhook_answer(&hook, 200, NULL, "{\"ok\":true}", 0);
    hook_send(&cfg, json, "n-42-1", 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    assert_int_equal(r.http_status, 200);

    struct fake_webhook_request q;
    fake_webhook_last(&hook, &q);
    assert_true(q.signed_ok);
    assert_string_equal(q.problem, "");
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/hooks/canary");
    assert_string_equal(q.content_type, "application/json");
    assert_string_equal(q.body, json);
    assert_string_equal(q.idempotency_key, "n-42-1");
    assert_memory_equal(q.signature, "sha256=", 7);
    /* canary's own check agrees with the receiver's. */
    assert_true(notify_webhook_verify(SECRET, q.timestamp, q.signature, q.body, strlen(q.body),
                                      now_ms() / 1000, 300));

    fake_webhook_answer(&hook, 204, NULL, NULL, 0);
    hook_send(&cfg, json, NULL, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    assert_int_equal(r.http_status, 204);
    fake_webhook_last(&hook, &q);
    assert_string_equal(q.idempotency_key, "");
    free(json);
}

static void test_webhook_statuses(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *retry_after;
        enum notify_outcome outcome;
        int64_t retry_after_ms;
    } cases[] = {
        {202, NULL, NOTIFY_DELIVERED, 0},
        {408, NULL, NOTIFY_RETRY, 0},
        {429, "3", NOTIFY_RETRY, 3000},
        {500, NULL, NOTIFY_RETRY, 0},
        {502, NULL, NOTIFY_RETRY, 0},
        {503, "120", NOTIFY_RETRY, 120000},
        {400, NULL, NOTIFY_PERMANENT_FAILURE, 0},
        {404, NULL, NOTIFY_PERMANENT_FAILURE, 0},
        {410, NULL, NOTIFY_PERMANENT_FAILURE, 0},
        {422, "5", NOTIFY_PERMANENT_FAILURE, 0},
        {301, NULL, NOTIFY_PERMANENT_FAILURE, 0},
    };
    struct notify_webhook_config cfg;
    webhook_config(&cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_webhook_answer(&hook, cases[i].status, cases[i].retry_after, "{\"error\":\"nope\"}",
                            0);
        struct notify_result r;
        hook_send(&cfg, "{\"a\":1}", "k-1", 0, &r);
        expect(&r, cases[i].outcome);
        assert_int_equal(r.http_status, cases[i].status);
        assert_int_equal(r.retry_after_ms, cases[i].retry_after_ms);
        if (cases[i].outcome != NOTIFY_DELIVERED) {
            char s[16];
            snprintf(s, sizeof s, "HTTP %d", cases[i].status);
            assert_non_null(strstr(r.error, s));
            assert_non_null(strstr(r.error, "nope")); /* the receiver's reason is quoted */
        }
    }
    fake_webhook_answer(&hook, 200, NULL, NULL, 0);
}

static void test_webhook_signature_problems(void **state)
{
    (void)state;
    struct notify_webhook_config cfg;
    webhook_config(&cfg);
    struct notify_result r;
    struct fake_webhook_request q;

    /* Another secret: the receiver refuses (401), permanently. */
    snprintf(cfg.secret, sizeof cfg.secret, "not-the-secret");
    hook_send(&cfg, "{\"a\":1}", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(r.http_status, 401);
    fake_webhook_last(&hook, &q);
    assert_false(q.signed_ok);
    assert_string_equal(q.problem, "signature mismatch");

    /* No secret: no signature headers (a receiver expecting one refuses). */
    cfg.secret[0] = '\0';
    hook_send(&cfg, "{\"a\":1}", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    fake_webhook_last(&hook, &q);
    assert_string_equal(q.signature, "");
    assert_string_equal(q.timestamp, "");

    struct fake_webhook open;
    fake_webhook_start(&open, "");
    snprintf(cfg.url, sizeof cfg.url, "%s", open.url);
    hook_send(&cfg, "{\"a\":1}", NULL, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    fake_webhook_last(&open, &q);
    assert_true(q.signed_ok);
    fake_webhook_stop(&open);
}

static void test_webhook_secrets_and_tokens_stay_out(void **state)
{
    (void)state;
    struct notify_webhook_config cfg;
    webhook_config(&cfg);
    /* A token in the URL's query or path never appears in errors, only the origin. */
    snprintf(cfg.url, sizeof cfg.url, "%s?token=url-t0ken-42", hook.url);
    fake_webhook_answer(&hook, 500, NULL, "echo: " SECRET " and more", 0);
    struct notify_result r;
    hook_send(&cfg, "{\"a\":1}", NULL, 0, &r);
    expect(&r, NOTIFY_RETRY);
    assert_null(strstr(r.error, "url-t0ken-42"));
    assert_null(strstr(r.error, "/hooks/canary"));
    assert_non_null(strstr(r.error, hook.http.base_url));
    assert_non_null(strstr(r.error, "echo: ")); /* the rest of the answer is still quoted */

    snprintf(cfg.url, sizeof cfg.url, "http://127.0.0.1:%u/hooks/s3cr3t-path", fake_closed_port());
    hook_send(&cfg, "{\"a\":1}", NULL, 0, &r);
    expect(&r, NOTIFY_RETRY);
    assert_null(strstr(r.error, "s3cr3t-path"));
    fake_webhook_answer(&hook, 200, NULL, NULL, 0);
}

static void test_webhook_network_and_input(void **state)
{
    (void)state;
    struct notify_webhook_config cfg;
    webhook_config(&cfg);
    struct notify_result r;

    fake_webhook_answer(&hook, 200, NULL, NULL, -1); /* never answers */
    hook_send(&cfg, "{\"a\":1}", NULL, 700, &r);
    expect(&r, NOTIFY_RETRY);
    assert_true(r.elapsed_ms >= 600 && r.elapsed_ms < 3000);
    fake_webhook_answer(&hook, 200, NULL, NULL, 0);

    struct fake_webhook_request q;
    int before = fake_webhook_last(&hook, &q);
    hook_send(&cfg, "{\"a\":1}", "bad key\r\nX-Evil: 1", 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    hook_send(&cfg, NULL, NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    snprintf(cfg.url, sizeof cfg.url, "file:///etc/passwd");
    hook_send(&cfg, "{}", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    cfg.url[0] = '\0';
    hook_send(&cfg, "{}", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(fake_webhook_last(&hook, &q), before);
}

/* ---- e-mail ---- */

static void smtp_config(struct notify_smtp_config *cfg)
{
    notify_smtp_config_init(cfg);
    snprintf(cfg->url, sizeof cfg->url, "%s", smtp.url);
    cfg->require_starttls = false; /* the fake has no TLS */
    snprintf(cfg->username, sizeof cfg->username, "%s", USER);
    snprintf(cfg->password, sizeof cfg->password, "%s", PASSWORD);
    snprintf(cfg->from, sizeof cfg->from, "canary@example.org");
    snprintf(cfg->from_name, sizeof cfg->from_name, "Canary Ålarms");
}

static void mail(const struct notify_smtp_config *cfg, const char *to, const char *subject,
                 const char *text, const char *html, unsigned timeout_ms, struct notify_result *r)
{
    struct notify_message m = {.channel = NOTIFY_CHANNEL_EMAIL,
                               .to = to,
                               .subject = subject,
                               .text_long = text,
                               .html = html,
                               .idempotency_key = "n-42:1"};
    enum notify_outcome o = notify_smtp_send(client, cfg, &m, timeout_ms, r);
    assert_int_equal(o, r->outcome);
}

/* The value of header `name` in a message, unfolded (CRLF + space joined). */
static void header(const char *msg, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    for (const char *p = msg; p && p < end; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t o = 0;
            while (v < end && o + 1 < cap) {
                if (v[0] == '\r' && v[1] == '\n') {
                    if (v[2] != ' ' && v[2] != '\t')
                        break;
                    v += 2;
                    continue;
                }
                out[o++] = *v++;
            }
            out[o] = '\0';
            return;
        }
    }
}

static size_t decode_b64_lines(const char *s, size_t n, char *out, size_t cap)
{
    char joined[FAKE_SMTP_DATA_MAX];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < sizeof joined; i++) {
        if (s[i] != '\r' && s[i] != '\n')
            joined[j++] = s[i];
    }
    joined[j] = '\0';
    int k = fake_base64_decode(joined, (unsigned char *)out, cap - 1);
    assert_true(k >= 0);
    out[k] = '\0';
    return (size_t)k;
}

/* RFC 2047: a header made of "=?UTF-8?B?...?=" words (separated by folding white space). */
static void decode_words(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    while (*v) {
        bool space = *v == ' ';
        while (*v == ' ')
            v++;
        if (strncmp(v, "=?UTF-8?B?", 10) != 0) {
            /* White space between encoded words is dropped, before plain text kept. */
            snprintf(out + o, cap - o, "%s%s", space && o > 0 ? " " : "", v);
            return;
        }
        v += 10;
        const char *e = strstr(v, "?=");
        assert_non_null(e);
        assert_true(e - v + 12 <= 75); /* an encoded word is at most 75 characters */
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)(e - v), v);
        int k = fake_base64_decode(word, (unsigned char *)out + o, cap - o - 1);
        assert_true(k >= 0);
        o += (size_t)k;
        out[o] = '\0';
        v = e + 2;
    }
}

/* The body of the MIME part with the given content type. */
static void part(const char *msg, const char *boundary, const char *type, char *out, size_t cap)
{
    char delim[128];
    snprintf(delim, sizeof delim, "--%s\r\n", boundary);
    for (const char *p = strstr(msg, delim); p; p = strstr(p + 1, delim)) {
        const char *h = p + strlen(delim);
        const char *body = strstr(h, "\r\n\r\n");
        assert_non_null(body);
        if (strncmp(h, "Content-Type: ", 14) != 0 || strncmp(h + 14, type, strlen(type)) != 0)
            continue;
        assert_non_null(strstr(h, "Content-Transfer-Encoding: base64"));
        body += 4;
        char end[128];
        snprintf(end, sizeof end, "--%s", boundary);
        const char *stop = strstr(body, end);
        assert_non_null(stop);
        decode_b64_lines(body, (size_t)(stop - body), out, cap);
        return;
    }
    fail_msg("no %s part", type);
}

static void test_email_delivered(void **state)
{
    (void)state;
    struct notify_smtp_config cfg;
    smtp_config(&cfg);
    const char *subject = "[critical] Gas leak suspected in Küche: methane at 4,800 ppm and rising "
                          "for 3 minutes — ventilate now";
    const char *text = "Gas leak suspected in Küche.\n.\n.. a line with dots\nVentilate.\n";
    const char *html = "<p>Gas leak suspected in <b>Küche</b>.</p>";
    struct notify_result r;
    mail(&cfg, "ops@example.com", subject, text, html, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    assert_memory_equal(r.provider_id, "FAKE", 4);

    struct fake_smtp_message m;
    fake_smtp_last(&smtp, &m);
    assert_true(m.auth_ok);
    assert_string_equal(m.auth_user, USER);
    assert_string_equal(m.mail_from, "canary@example.org");
    assert_string_equal(m.rcpt_to, "ops@example.com");

    char v[1024], d[1024];
    header(m.data, "Date", v, sizeof v);
    assert_true(strlen(v) >= 29 && strstr(v, " +0000") != NULL);
    header(m.data, "Message-ID", v, sizeof v);
    assert_string_equal(v, "<canary.n-42=1@example.org>");
    header(m.data, "To", v, sizeof v);
    assert_string_equal(v, "<ops@example.com>");
    header(m.data, "From", v, sizeof v);
    assert_non_null(strstr(v, "<canary@example.org>"));
    decode_words(v, d, sizeof d);
    assert_string_equal(d, "Canary Ålarms <canary@example.org>");
    header(m.data, "Subject", v, sizeof v);
    decode_words(v, d, sizeof d);
    assert_string_equal(d, subject);
    header(m.data, "MIME-Version", v, sizeof v);
    assert_string_equal(v, "1.0");
    header(m.data, "Auto-Submitted", v, sizeof v);
    assert_string_equal(v, "auto-generated");
    /* Every line of the message within RFC 5322's 78 recommended characters. */
    for (const char *p = m.data; *p;) {
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 78);
        p = e + 2;
    }

    header(m.data, "Content-Type", v, sizeof v);
    const char *b = strstr(v, "boundary=\"");
    assert_non_null(b);
    assert_memory_equal(v, "multipart/alternative;", 22);
    char boundary[128];
    snprintf(boundary, sizeof boundary, "%.*s", (int)(strchr(b + 10, '"') - b - 10), b + 10);
    char body[4096];
    part(m.data, boundary, "text/plain; charset=utf-8", body, sizeof body);
    assert_string_equal(body, text);
    part(m.data, boundary, "text/html; charset=utf-8", body, sizeof body);
    assert_string_equal(body, html);
    char last[160];
    snprintf(last, sizeof last, "--%s--\r\n", boundary);
    assert_non_null(strstr(m.data, last));
}

static void test_email_plain_and_headers(void **state)
{
    (void)state;
    struct notify_smtp_config cfg;
    smtp_config(&cfg);
    cfg.from_name[0] = '\0';
    struct notify_result r;
    mail(&cfg, "ops@example.com", "Hi\r\nBcc: evil@example.com", "plain only", NULL, 0, &r);
    expect(&r, NOTIFY_DELIVERED);
    struct fake_smtp_message m;
    fake_smtp_last(&smtp, &m);
    char v[512];
    header(m.data, "Subject", v, sizeof v);
    assert_string_equal(v, "Hi Bcc: evil@example.com"); /* one header, not two */
    assert_null(strstr(m.data, "\r\nBcc:"));
    header(m.data, "From", v, sizeof v);
    assert_string_equal(v, "<canary@example.org>");
    header(m.data, "Content-Type", v, sizeof v);
    assert_string_equal(v, "text/plain; charset=utf-8");
    const char *body = strstr(m.data, "\r\n\r\n") + 4;
    char text[256];
    decode_b64_lines(body, strlen(body), text, sizeof text);
    assert_string_equal(text, "plain only");

    /* Addresses that could smuggle commands or headers are refused before sending. */
    int before = fake_smtp_last(&smtp, &m);
    static const char *const bad[] = {"ops@example.com\r\nRCPT TO:<x@y>",
                                      "<ops@example.com>",
                                      "ops example.com",
                                      "ops@",
                                      "@example.com",
                                      "a@b@c",
                                      "ops@exämple.com",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mail(&cfg, bad[i], "s", "t", NULL, 0, &r);
        expect(&r, NOTIFY_PERMANENT_FAILURE);
    }
    mail(&cfg, "ops@example.com", "s", NULL, NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    snprintf(cfg.from, sizeof cfg.from, "not an address");
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(fake_smtp_last(&smtp, &m), before);
}

static void test_email_replies(void **state)
{
    (void)state;
    static const struct {
        int mail, rcpt, data_end;
        enum notify_outcome outcome;
        long code;
        const char *says;
    } cases[] = {
        {0, 550, 0, NOTIFY_PERMANENT_FAILURE, 550, "Recipient address rejected"},
        {0, 450, 0, NOTIFY_RETRY, 450, "temporarily unavailable"},
        {451, 0, 0, NOTIFY_RETRY, 451, "Sender refused"},
        {553, 0, 0, NOTIFY_PERMANENT_FAILURE, 553, "Sender refused"},
        {0, 0, 554, NOTIFY_PERMANENT_FAILURE, 554, "message refused: 554 5.7.1"},
        {0, 0, 452, NOTIFY_RETRY, 452, "message refused: 452 4.3.1 Insufficient"},
    };
    struct notify_smtp_config cfg;
    smtp_config(&cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_smtp_set(&smtp, cases[i].mail, cases[i].rcpt, cases[i].data_end, false);
        struct notify_result r;
        mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
        expect(&r, cases[i].outcome);
        assert_int_equal(r.provider_code, cases[i].code);
        if (strstr(r.error, cases[i].says) == NULL)
            fail_msg("\"%s\" not in \"%s\"", cases[i].says, r.error);
    }
    fake_smtp_set(&smtp, 0, 0, 0, false);
}

static void test_email_auth_and_tls(void **state)
{
    (void)state;
    struct notify_smtp_config cfg;
    struct notify_result r;
    struct fake_smtp_message m;
    int before = fake_smtp_last(&smtp, &m);

    /* Wrong password: permanent; the server quotes what it got, canary masks it. */
    smtp_config(&cfg);
    snprintf(cfg.password, sizeof cfg.password, "%s", PASSWORD "-typo");
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(r.provider_code, 535);
    assert_null(strstr(r.error, "-typo"));

    /* No credentials where the server wants them: 530, permanent. */
    smtp_config(&cfg);
    cfg.username[0] = cfg.password[0] = '\0';
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_int_equal(r.provider_code, 530);

    /* STARTTLS required (the default) and not offered: permanent, nothing sent in clear —
     * and the client's cached connection to this server, made by the earlier tests without
     * STARTTLS, is not reused for it. */
    smtp_config(&cfg);
    cfg.require_starttls = true;
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
    assert_non_null(strstr(r.error, "STARTTLS"));

    assert_int_equal(fake_smtp_last(&smtp, &m), before);
}

static void test_email_network(void **state)
{
    (void)state;
    struct notify_smtp_config cfg;
    struct notify_result r;
    smtp_config(&cfg);
    snprintf(cfg.url, sizeof cfg.url, "smtp://127.0.0.1:%u", fake_closed_port());
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_RETRY);

    /* A server that accepts the connection and never greets. */
    struct fake_smtp quiet;
    fake_smtp_start(&quiet, NULL, NULL);
    fake_smtp_set(&quiet, 0, 0, 0, true);
    smtp_config(&cfg);
    snprintf(cfg.url, sizeof cfg.url, "%s", quiet.url);
    mail(&cfg, "ops@example.com", "s", "t", NULL, 800, &r);
    expect(&r, NOTIFY_RETRY);
    assert_true(r.elapsed_ms >= 700 && r.elapsed_ms < 3000);
    fake_smtp_stop(&quiet);

    snprintf(cfg.url, sizeof cfg.url, "http://127.0.0.1:25");
    mail(&cfg, "ops@example.com", "s", "t", NULL, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
}

/* One client keeps its connection to the SMTP server from message to message. */
static void test_email_connection_reuse(void **state)
{
    (void)state;
    struct notify_smtp_config cfg;
    smtp_config(&cfg);
    struct notify_client *c = notify_client_new();
    assert_non_null(c);
    pthread_mutex_lock(&smtp.lock);
    int conns = smtp.connections;
    pthread_mutex_unlock(&smtp.lock);
    struct fake_smtp_message m;
    int before = fake_smtp_last(&smtp, &m);
    for (int i = 0; i < 3; i++) {
        struct notify_message msg = {.channel = NOTIFY_CHANNEL_EMAIL,
                                     .to = "ops@example.com",
                                     .subject = "s",
                                     .text_long = "t"};
        struct notify_result r;
        notify_send(c, &(struct notify_config){.smtp = cfg}, &msg, 0, &r);
        expect(&r, NOTIFY_DELIVERED);
    }
    assert_int_equal(fake_smtp_last(&smtp, &m), before + 3);
    pthread_mutex_lock(&smtp.lock);
    int used = smtp.connections - conns;
    pthread_mutex_unlock(&smtp.lock);
    assert_int_equal(used, 1);
    notify_client_free(c);
}

/* ---- all channels ---- */

struct worker {
    pthread_t t;
    int delivered;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct notify_client *c = notify_client_new();
    if (c == NULL)
        return NULL;
    struct notify_config cfg;
    notify_config_init(&cfg);
    twilio_config(&cfg.twilio);
    webhook_config(&cfg.webhook);
    for (int i = 0; i < 10; i++) {
        struct notify_message sms_msg = {.channel = NOTIFY_CHANNEL_SMS, .to = TO_NR, .text = "t"};
        struct notify_message hook_msg = {.channel = NOTIFY_CHANNEL_WEBHOOK, .json = "{}"};
        struct notify_result r;
        if (notify_send(c, &cfg, &sms_msg, 5000, &r) == NOTIFY_DELIVERED)
            w->delivered++;
        if (notify_send(c, &cfg, &hook_msg, 5000, &r) == NOTIFY_DELIVERED)
            w->delivered++;
    }
    notify_client_free(c);
    return NULL;
}

/* Delivery threads each with their own client, at the same time. */
static void test_concurrent_clients(void **state)
{
    (void)state;
    struct fake_twilio_request q;
    int before = fake_twilio_last(&twilio, &q);
    struct worker w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&w[i].t, NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].t, NULL);
        assert_int_equal(w[i].delivered, 20);
    }
    assert_int_equal(fake_twilio_last(&twilio, &q), before + 40);
}

static void test_dispatch(void **state)
{
    (void)state;
    struct notify_config cfg;
    notify_config_init(&cfg);
    twilio_config(&cfg.twilio);
    webhook_config(&cfg.webhook);
    smtp_config(&cfg.smtp);
    struct notify_message msgs[] = {
        {.channel = NOTIFY_CHANNEL_SMS, .to = TO_NR, .text = "t"},
        {.channel = NOTIFY_CHANNEL_WHATSAPP, .to = TO_NR, .text = "t"},
        {.channel = NOTIFY_CHANNEL_VOICE, .to = TO_NR, .text = "t"},
        {.channel = NOTIFY_CHANNEL_WEBHOOK, .json = "{}"},
        {.channel = NOTIFY_CHANNEL_EMAIL, .to = "ops@example.com", .subject = "s", .text = "t"},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        struct notify_result r;
        notify_send(client, &cfg, &msgs[i], 0, &r);
        expect(&r, NOTIFY_DELIVERED);
    }
    struct notify_message bad = {.channel = (enum notify_channel)99};
    struct notify_result r;
    notify_send(client, &cfg, &bad, 0, &r);
    expect(&r, NOTIFY_PERMANENT_FAILURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_sms_delivered),
        cmocka_unit_test(test_twilio_whatsapp),
        cmocka_unit_test(test_twilio_voice),
        cmocka_unit_test(test_twilio_errors),
        cmocka_unit_test(test_twilio_credentials_and_account),
        cmocka_unit_test(test_twilio_network),
        cmocka_unit_test(test_twilio_refused_before_sending),
        cmocka_unit_test(test_webhook_delivered),
        cmocka_unit_test(test_webhook_statuses),
        cmocka_unit_test(test_webhook_signature_problems),
        cmocka_unit_test(test_webhook_secrets_and_tokens_stay_out),
        cmocka_unit_test(test_webhook_network_and_input),
        cmocka_unit_test(test_email_delivered),
        cmocka_unit_test(test_email_plain_and_headers),
        cmocka_unit_test(test_email_replies),
        cmocka_unit_test(test_email_auth_and_tls),
        cmocka_unit_test(test_email_network),
        cmocka_unit_test(test_email_connection_reuse),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
