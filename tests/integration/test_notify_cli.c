/* test_notify_cli.c — `canary notify test` (src/cli/notify_cmd.c) against the loopback fakes
 * of the providers: a fake Twilio (fake_twilio.h), a webhook receiver that verifies signatures
 * (fake_webhook.h) and a small SMTP server (fake_smtp.h).
 *
 * The binary is run as an operator would run it, with canaryd's configuration coming from
 * CANARY_* environment variables (and once from a mode-0600 --config file). Covered: an SMS,
 * a WhatsApp message and a voice call as the fake saw them (To, From, Body / Twiml); an
 * e-mail with its envelope and subject; a webhook whose signature the receiver verified and
 * whose body says "alert.test"; an invalid number (exit 1, Twilio's 21211 in the line); a
 * provider that quotes the auth token back (the token in neither stdout nor stderr); usage
 * errors and a missing provider configuration (exit 2, a message naming the option or key,
 * nothing sent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_run.h"
#include "fake_smtp.h"
#include "fake_twilio.h"
#include "fake_webhook.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SID      "ACf00dcafe0123456789abcdef01234567"
#define TOKEN    "tw_t0ken_5ecret_d0_not_leak"
#define SECRET   "whsec_5ecret_d0_not_leak"
#define USER     "alerts@example.org"
#define PASSWORD "smtp-pa55w0rd-d0-not-leak"
#define FROM_NR  "+15005550006"
#define WA_FROM  "+14155238886"
#define TO_NR    "+4915112345678"

static struct fake_twilio twilio;
static struct fake_webhook hook;
static struct fake_smtp smtp;
static char dir[64];
static char basic_b64[256]; /* the Authorization header's credential */

/* What one run printed. */
/* The environment of a configured canary: every provider set up, pointing at the fakes. */
static const char *const *provider_env(void)
{
    static char vars[12][256];
    static const char *list[13];
    snprintf(vars[0], sizeof vars[0], "CANARY_NOTIFY_TWILIO_BASE_URL=%s", twilio.http.base_url);
    snprintf(vars[1], sizeof vars[1], "CANARY_NOTIFY_TWILIO_ACCOUNT_SID=%s", SID);
    snprintf(vars[2], sizeof vars[2], "CANARY_NOTIFY_TWILIO_AUTH_TOKEN=%s", TOKEN);
    snprintf(vars[3], sizeof vars[3], "CANARY_NOTIFY_TWILIO_FROM=%s", FROM_NR);
    snprintf(vars[4], sizeof vars[4], "CANARY_NOTIFY_TWILIO_WHATSAPP_FROM=%s", WA_FROM);
    snprintf(vars[5], sizeof vars[5], "CANARY_NOTIFY_SMTP_URL=%s", smtp.url);
    snprintf(vars[6], sizeof vars[6], "CANARY_NOTIFY_SMTP_FROM=canary@example.org");
    snprintf(vars[7], sizeof vars[7], "CANARY_NOTIFY_SMTP_USERNAME=%s", USER);
    snprintf(vars[8], sizeof vars[8], "CANARY_NOTIFY_SMTP_PASSWORD=%s", PASSWORD);
    snprintf(vars[9], sizeof vars[9], "CANARY_NOTIFY_SMTP_STARTTLS=false"); /* the fake has none */
    snprintf(vars[10], sizeof vars[10], "CANARY_NOTIFY_WEBHOOK_SECRET=%s", SECRET);
    for (int i = 0; i < 11; i++)
        list[i] = vars[i];
    list[11] = NULL;
    return list;
}

/* Runs `canary <args...>` (NULL-terminated) in an environment with no CANARY_* variable but
 * env (NAME=value strings, NULL-terminated; env may be NULL). */
#define run_canary_env(env, ...) cli_run(dir, env, __VA_ARGS__)
#define run_configured(...)      run_canary_env(provider_env(), "notify", "test", __VA_ARGS__, NULL)

/* No secret, raw or as the Basic credential, in anything the run printed. */
static void expect_no_secret(const struct cli_run *r)
{
    static const char *const needles[] = {TOKEN, SECRET, PASSWORD, "5ecret", "pa55w0rd"};
    const char *texts[] = {r->out, r->err};
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
            if (strstr(texts[t], needles[i]) != NULL)
                fail_msg("secret \"%s\" printed: %s", needles[i], texts[t]);
        }
        if (strstr(texts[t], basic_b64) != NULL)
            fail_msg("the Basic credential printed: %s", texts[t]);
    }
}

/* One result line on stdout, of the given outcome. */
static void expect_line(const struct cli_run *r, const char *outcome)
{
    if (getenv("NOTIFY_PRINT") != NULL) /* how the lines read, for the docs */
        printf("%s", r->out);
    expect_contains(r->out, outcome);
    assert_int_equal(strncmp(r->out, outcome, strlen(outcome)), 0);
    const char *nl = strchr(r->out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    expect_contains(r->out, "elapsed_ms=");
    expect_no_secret(r);
}

/* Requests the fakes have had so far. */
static int twilio_count(void)
{
    static struct fake_twilio_request q;
    return fake_twilio_last(&twilio, &q);
}

static int smtp_count(void)
{
    static struct fake_smtp_message m;
    return fake_smtp_last(&smtp, &m);
}

static int setup(void **state)
{
    (void)state;
    fake_twilio_start(&twilio, SID, TOKEN);
    fake_webhook_start(&hook, SECRET);
    fake_smtp_start(&smtp, USER, PASSWORD);
    snprintf(dir, sizeof dir, "/tmp/canary-notify-cli-XXXXXX");
    assert_non_null(mkdtemp(dir));
    EVP_EncodeBlock((unsigned char *)basic_b64, (const unsigned char *)SID ":" TOKEN,
                    (int)strlen(SID ":" TOKEN));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_smtp_stop(&smtp);
    fake_webhook_stop(&hook);
    fake_twilio_stop(&twilio);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_sms(void **state)
{
    (void)state;
    struct cli_run r = run_configured("--channel", "sms", "--to", TO_NR);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    expect_contains(r.out, "channel=sms");
    expect_contains(r.out, "provider_id=SM");
    expect_contains(r.out, "http_status=201");

    struct fake_twilio_request q;
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Messages.json");
    assert_string_equal(q.user, SID);
    assert_string_equal(q.to, TO_NR);
    assert_string_equal(q.from, FROM_NR);
    expect_contains(q.body, "canary test message from ");
    expect_contains(q.body, " UTC: if you can read this, sms alerts reach you.");
    assert_true(strlen(q.body) <= 160);
    cli_run_free(&r);

    /* --message replaces the text; --to=VALUE works as well as --to VALUE. */
    r = run_configured("--channel", "sms", "--to=" TO_NR, "--message", "Hallo Küche & Co");
    cli_expect_status(&r, 0);
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.body, "Hallo Küche & Co");
    cli_run_free(&r);
}

static void test_whatsapp_and_voice(void **state)
{
    (void)state;
    struct cli_run r = run_configured("--channel", "whatsapp", "--to", TO_NR);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    struct fake_twilio_request q;
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Messages.json");
    assert_string_equal(q.to, "whatsapp:" TO_NR);
    assert_string_equal(q.from, "whatsapp:" WA_FROM);
    expect_contains(q.body, "whatsapp alerts reach you.");
    cli_run_free(&r);

    r = run_configured("--channel", "voice", "--to", TO_NR);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    expect_contains(r.out, "provider_id=CA");
    fake_twilio_last(&twilio, &q);
    assert_string_equal(q.path, "/2010-04-01/Accounts/" SID "/Calls.json");
    assert_string_equal(q.to, TO_NR);
    assert_string_equal(q.from, FROM_NR);
    assert_true(q.twiml_ok);
    expect_contains(q.say, "voice alerts reach you.");
    cli_run_free(&r);
}

static void test_email(void **state)
{
    (void)state;
    int before = smtp_count();
    struct cli_run r = run_configured("--channel", "email", "--to", "ops@example.com");
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    expect_contains(r.out, "provider_id=FAKE");
    static struct fake_smtp_message m;
    assert_int_equal(fake_smtp_last(&smtp, &m), before + 1);
    assert_true(m.auth_ok);
    assert_string_equal(m.mail_from, "canary@example.org");
    assert_string_equal(m.rcpt_to, "ops@example.com");
    expect_contains(m.data, "\r\nSubject: canary test message from ");
    expect_contains(m.data, "multipart/alternative");
    cli_run_free(&r);
}

static void test_webhook(void **state)
{
    (void)state;
    fake_webhook_answer(&hook, 200, NULL, "{\"ok\":true}", 0);
    /* The URL's path is the receiver's business (it may hold a token): not printed. */
    char url[200];
    snprintf(url, sizeof url, "%s?token=path-t0ken", hook.url);
    struct cli_run r = run_configured("--channel", "webhook", "--to", url);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    expect_contains(r.out, "http_status=200");
    expect_contains(r.out, hook.http.base_url);
    assert_null(strstr(r.out, "path-t0ken"));
    assert_null(strstr(r.out, "/hooks/canary"));

    struct fake_webhook_request q;
    fake_webhook_last(&hook, &q);
    assert_true(q.signed_ok);
    assert_string_equal(q.problem, "");
    assert_string_equal(q.path, "/hooks/canary");
    assert_memory_equal(q.idempotency_key, "canary-test-", 12);
    cJSON *body = cJSON_Parse(q.body);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "type")->valuestring, "alert.test");
    assert_string_equal(cJSON_GetObjectItem(body, "id")->valuestring, q.idempotency_key);
    cJSON *alert = cJSON_GetObjectItem(body, "alert");
    assert_int_equal(cJSON_GetObjectItem(alert, "id")->valueint, 0);
    expect_contains(cJSON_GetObjectItem(alert, "message")->valuestring,
                    "webhook alerts reach you.");
    cJSON_Delete(body);
    cli_run_free(&r);

    /* A receiver that refuses: exit 1, its status in the line. */
    fake_webhook_answer(&hook, 410, NULL, "gone", 0);
    r = run_configured("--channel", "webhook", "--to", hook.url);
    cli_expect_status(&r, 1);
    expect_line(&r, "permanent_failure ");
    expect_contains(r.out, "http_status=410");
    cli_run_free(&r);
    fake_webhook_answer(&hook, 200, NULL, NULL, 0);
}

static void test_provider_refuses(void **state)
{
    (void)state;
    struct cli_run r = run_configured("--channel", "sms", "--to", "+15005550001");
    cli_expect_status(&r, 1);
    expect_line(&r, "permanent_failure ");
    expect_contains(r.out, "http_status=400");
    expect_contains(r.out, "provider_code=21211");
    cli_run_free(&r);

    /* A careless proxy quotes the token and the Authorization header back. */
    r = run_configured("--channel", "sms", "--to", "+15005550666");
    cli_expect_status(&r, 1);
    expect_line(&r, "permanent_failure ");
    cli_run_free(&r);

    /* Try again later: exit 1 as well, outcome retry. */
    r = run_configured("--channel", "sms", "--to", "+15005550500");
    cli_expect_status(&r, 1);
    expect_line(&r, "retry ");
    cli_run_free(&r);
}

/* A usage error: exit 2, nothing on stdout, a message naming `names`, nothing sent. */
static void expect_usage_error(struct cli_run r, const char *names)
{
    cli_expect_status(&r, 2);
    assert_string_equal(r.out, "");
    expect_contains(r.err, names);
    expect_no_secret(&r);
    cli_run_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    int sent = twilio_count();
    expect_usage_error(run_configured("--channel", "sms"), "--to");
    expect_usage_error(run_configured("--to", TO_NR), "--channel");
    expect_usage_error(run_configured("--channel", "fax", "--to", TO_NR), "--channel");
    expect_usage_error(run_configured("--channel", "sms", "--to", "4915112345678"), "--to");
    expect_usage_error(run_configured("--channel", "voice", "--to", "+49 151 1234"), "--to");
    expect_usage_error(run_configured("--channel", "email", "--to", "ops.example.com"), "--to");
    expect_usage_error(run_configured("--channel", "webhook", "--to", "ftp://example.com/x"),
                       "--to");
    expect_usage_error(run_configured("--channel", "sms", "--to", TO_NR, "--timeout-ms", "0"),
                       "--timeout-ms");
    expect_usage_error(run_configured("--channel", "sms", "--to", TO_NR, "--bogus"), "--bogus");
    expect_usage_error(run_configured("--channel", "sms", "--to"), "--to");
    expect_usage_error(run_canary_env(NULL, "notify", NULL), "usage: canary notify test");
    expect_usage_error(run_canary_env(NULL, "notify", "send", NULL), "send");
    assert_int_equal(twilio_count(), sent);

    struct cli_run r = run_canary_env(NULL, "notify", "test", "--help", NULL);
    cli_expect_status(&r, 0);
    expect_contains(r.out, "usage: canary notify test --channel");
    expect_contains(r.out, "notify.twilio_auth_token");
    cli_run_free(&r);
    r = run_canary_env(NULL, "--help", NULL);
    cli_expect_status(&r, 0);
    expect_contains(r.out, "notify");
    cli_run_free(&r);
}

static void test_missing_configuration(void **state)
{
    (void)state;
    int sent = twilio_count();
    /* Nothing configured at all. */
    struct cli_run r =
        run_canary_env(NULL, "notify", "test", "--channel", "sms", "--to", TO_NR, NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "sms needs notify.twilio_account_sid, notify.twilio_auth_token and "
                           "notify.twilio_from");
    expect_contains(r.err, "CANARY_NOTIFY_TWILIO_AUTH_TOKEN");
    cli_run_free(&r);

    /* Only the token missing: it alone is named as not set. */
    const char *const *all = provider_env();
    const char *some[16];
    size_t n = 0;
    for (size_t i = 0; all[i] != NULL; i++) {
        if (strstr(all[i], "AUTH_TOKEN") == NULL && strstr(all[i], "SMTP_URL") == NULL &&
            strstr(all[i], "WEBHOOK_SECRET") == NULL)
            some[n++] = all[i];
    }
    some[n] = NULL;
    r = run_canary_env(some, "notify", "test", "--channel", "voice", "--to", TO_NR, NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "not set: notify.twilio_auth_token;");
    cli_run_free(&r);
    r = run_canary_env(some, "notify", "test", "--channel", "email", "--to", "a@example.com", NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "not set: notify.smtp_url");
    cli_run_free(&r);
    r = run_canary_env(some, "notify", "test", "--channel", "webhook", "--to", hook.url, NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "notify.webhook_secret");
    cli_run_free(&r);
    assert_int_equal(twilio_count(), sent);

    /* A configuration file that does not exist, and a bad key: exit 2, named. */
    r = run_canary_env(provider_env(), "notify", "test", "--channel", "sms", "--to", TO_NR,
                       "--config", "/nonexistent/canary.conf", NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "/nonexistent/canary.conf");
    cli_run_free(&r);
    const char *bad_env[] = {"CANARY_NOTIFY_TWILIO_FROM=12345", NULL};
    r = run_canary_env(bad_env, "notify", "test", "--channel", "sms", "--to", TO_NR, NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "notify.twilio_from");
    cli_run_free(&r);
}

/* The settings from a mode-0600 configuration file (--config, then $CANARY_CONFIG), as
 * canaryd reads it, the secret included. */
static void test_config_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/canary.conf", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "[notify]\ntwilio_base_url = %s\ntwilio_account_sid = %s\ntwilio_auth_token = %s\n"
            "twilio_from = %s\n",
            twilio.http.base_url, SID, TOKEN, FROM_NR);
    fclose(f);
    struct cli_run r = run_canary_env(NULL, "notify", "test", "--config", path, "--channel", "sms",
                                      "--to", TO_NR, NULL);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    cli_run_free(&r);

    char var[200];
    snprintf(var, sizeof var, "CANARY_CONFIG=%s", path);
    const char *env[] = {var, NULL};
    r = run_canary_env(env, "notify", "test", "--channel", "voice", "--to", TO_NR, NULL);
    cli_expect_status(&r, 0);
    expect_line(&r, "delivered ");
    cli_run_free(&r);

    /* A secret in a file others can read is refused, as canaryd refuses it. */
    assert_int_equal(chmod(path, 0644), 0);
    r = run_canary_env(NULL, "notify", "test", "--config", path, "--channel", "sms", "--to", TO_NR,
                       NULL);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "twilio_auth_token");
    expect_no_secret(&r);
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sms),
        cmocka_unit_test(test_whatsapp_and_voice),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_webhook),
        cmocka_unit_test(test_provider_refuses),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_missing_configuration),
        cmocka_unit_test(test_config_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
