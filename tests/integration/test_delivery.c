/* test_delivery.c — alert delivery end to end: the real canaryd raises alerts from readings
 * and its delivery threads send them to local fakes of Twilio (SMS, voice), a webhook
 * receiver that verifies signatures, and an SMTP server.
 *
 * What it proves: a critical gas leak reaches SMS, e-mail and the webhook once (not once per
 * reading); an unacknowledged alert escalates step by step (voice call, then the next
 * person); acknowledging stops the escalation; resolving sends the all-clear to whoever was
 * told; a Twilio outage is retried until it ends and nothing is lost; a canaryd killed with
 * -9 while notifications are pending sends them after its restart; quiet hours hold back
 * non-critical alerts but not critical ones; a recipient's hourly limit holds back
 * non-critical alerts; a permanent provider error is recorded and escalation goes on; no
 * secret ever reaches the log; with an LLM configured its text goes out, and when it is too
 * slow the template does, on time. The outbox is read straight from the store file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fake_llm.h"
#include "fake_smtp.h"
#include "fake_twilio.h"
#include "fake_webhook.h"
#include "harness.h"
#include "store/store.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SID          "AC00000000000000000000000000000042"
#define TOKEN        "tw-secret-token-4f1e"
#define HOOK_SECRET  "whsec-delivery-77ab"
#define ADMIN_TOKEN  "admin-token-5ca1ab1e"
#define ALICE        "+4915100000001"
#define BOB          "+4915100000002"
#define CAROL        "+4915100000003"
#define DAVE         "+4915100000004"
#define BROKEN_PROXY "+15005550666" /* the fake quotes the token back in its error */
#define INVALID      "+15005550001" /* the fake answers 21211 */

static struct fake_twilio twilio;
static struct fake_webhook hook;
static struct fake_smtp smtp;
static char conf_dir[64];
static char conf_path[128];

/* Writes the configuration: the fakes as providers, recipients, routes, fast escalation and
 * retries, plus `extra` lines. Secrets are in the file (mode 0600), never on the command
 * line. */
static void write_config(const char *extra)
{
    snprintf(conf_dir, sizeof conf_dir, "/tmp/canary-conf-XXXXXX");
    assert_non_null(mkdtemp(conf_dir));
    snprintf(conf_path, sizeof conf_path, "%s/canary.conf", conf_dir);
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    fprintf(f,
            "[api]\nadmin_token = %s\n"
            "[notify]\n"
            "twilio_base_url = %s\ntwilio_account_sid = %s\ntwilio_auth_token = %s\n"
            "twilio_from = +15005550006\n"
            "smtp_url = %s\nsmtp_starttls = false\nsmtp_from = canary@example.com\n"
            "webhook_secret = %s\n"
            "escalate_after_min = 0.05\nretry_min_s = 1\nretry_max_s = 2\n"
            "[recipient.alice]\nsms = " ALICE "\nvoice = " ALICE "\nemail = alice@example.com\n"
            "[recipient.bob]\nsms = " BOB "\n"
            "[recipient.ops]\nwebhook = %s\n"
            "%s",
            ADMIN_TOKEN, twilio.http.base_url, SID, TOKEN, smtp.url, HOOK_SECRET, hook.url, extra);
    fclose(f);
    chmod(conf_path, 0600);
}

static void remove_config(void)
{
    unlink(conf_path);
    rmdir(conf_dir);
}

static int start_with(void **state, const char *extra)
{
    fake_twilio_start(&twilio, SID, TOKEN);
    fake_webhook_start(&hook, HOOK_SECRET);
    fake_smtp_start(&smtp, "", "");
    write_config(extra);
    struct daemon *d = calloc(1, sizeof *d);
    daemon_init(d, "--config", conf_path, "--set", "log.level=debug", "--set",
                "alerts.resolve_after_s=3600", "--set", "alerts.offline_severity=off", NULL);
    daemon_start(d);
    *state = d;
    return 0;
}

static int start_main(void **state)
{
    return start_with(state, "[route.gas]\nkinds = gas_leak\n"
                             "steps = sms:alice+email:alice+webhook:ops, voice:alice, sms:bob\n");
}

/* Prints the end of canaryd's log (a crash or a refused start says why there). */
static void print_log_tail(const struct daemon *d)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tail -n 60 '%s' >&2", d->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", d->log);
}

static int stop(void **state)
{
    struct daemon *d = *state;
    int rc = daemon_stop(d, SIGTERM);
    if (rc != 0) {
        fprintf(stderr, "canaryd exited with %d\n", rc);
        print_log_tail(d);
    }
    daemon_cleanup(d);
    free(d);
    fake_twilio_stop(&twilio);
    fake_webhook_stop(&hook);
    fake_smtp_stop(&smtp);
    remove_config();
    return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- helpers */

static void post_reading(struct daemon *d, const char *device, const char *values)
{
    static int seq = 1;
    char body[512];
    snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":%d,\"ts\":%lld,\"values\":{%s}}",
             device, seq++, (long long)now_ms(), values);
    cJSON *j = NULL;
    long st = http_post_json(d, "/api/v1/ingest", body, &j);
    if (st != 200) {
        char *t = j ? cJSON_PrintUnformatted(j) : NULL;
        fail_msg("posting %s: %ld %s", body, st, t ? t : "");
    }
    cJSON_Delete(j);
}

/* The id of the newest alert of a device, 0 when it has none. */
static uint64_t alert_id(struct daemon *d, const char *device)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/alerts?device=%s", device);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *list = cJSON_GetObjectItem(j, "alerts");
    cJSON *first = cJSON_GetArrayItem(list, 0);
    uint64_t id = first ? (uint64_t)cJSON_GetObjectItem(first, "id")->valuedouble : 0;
    cJSON_Delete(j);
    return id;
}

static long alert_action(struct daemon *d, uint64_t id, const char *what)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/alerts/%llu/%s", (unsigned long long)id, what);
    const char *headers[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    const char *body = "{\"by\":\"alice\",\"comment\":\"on my way\"}";
    struct http_response r;
    assert_int_equal(
        http_call_with(d, "POST", path, headers, "application/json", body, strlen(body), &r), 0);
    long st = r.status;
    http_response_free(&r);
    return st;
}

/* A critical gas leak on device: its alert's id. */
static uint64_t gas_leak(struct daemon *d, const char *device)
{
    post_reading(d, device, "\"gas_ppm\":420,\"temperature_c\":21.5");
    post_reading(d, device, "\"gas_ppm\":6200,\"temperature_c\":21.6");
    uint64_t id = alert_id(d, device);
    assert_true(id > 0);
    return id;
}

/* The outbox rows of an alert (0 = all), newest first; returns the count. */
static int outbox(struct daemon *d, uint64_t alert, struct store_notification *out, size_t cap)
{
    struct store_options o = {.path = d->db, .read_only = true, .busy_timeout_ms = 5000};
    struct store *s = NULL;
    char err[256];
    assert_int_equal(store_open(&s, &o, err, sizeof err), 0);
    struct store_outbox_filter f = {.alert_id = alert, .limit = cap};
    int n = store_outbox_list(s, &f, out, err, sizeof err);
    store_close(s);
    assert_true(n >= 0);
    return n;
}

struct count_wait {
    bool call;
    const char *to;
    int want;
};

static bool twilio_reached(void *arg)
{
    struct count_wait *w = arg;
    return fake_twilio_count(&twilio, w->call, w->to) >= w->want;
}

/* Waits until the fake Twilio has accepted `want` messages (or calls) to `to`. */
static void expect_twilio(bool call, const char *to, int want, int64_t timeout_ms)
{
    struct count_wait w = {call, to, want};
    if (!wait_until(twilio_reached, &w, timeout_ms))
        fail_msg("waited %lld ms for %d %s to %s; got %d", (long long)timeout_ms, want,
                 call ? "calls" : "messages", to, fake_twilio_count(&twilio, call, to));
}

/* The text of the newest accepted request to `to`. */
static void last_text_to(bool call, const char *to, char *out, size_t len)
{
    static struct fake_twilio_seen seen[FAKE_TWILIO_HISTORY];
    int n = fake_twilio_history(&twilio, seen, FAKE_TWILIO_HISTORY);
    out[0] = '\0';
    for (int i = (n < FAKE_TWILIO_HISTORY ? n : FAKE_TWILIO_HISTORY) - 1; i >= 0; i--) {
        if (seen[i].call == call && seen[i].status == 201 && strcmp(seen[i].to, to) == 0) {
            snprintf(out, len, "%s", seen[i].text);
            return;
        }
    }
}

struct row_wait {
    struct daemon *d;
    uint64_t alert;
    const char *recipient;
    const char *kind;
    const char *channel;
    const char *status;
    unsigned min_attempts;
};

/* The row of an alert for a recipient and kind, if any. */
static bool find_row(struct daemon *d, uint64_t alert, const char *recipient, const char *kind,
                     const char *channel, struct store_notification *out)
{
    static struct store_notification rows[64];
    int n = outbox(d, alert, rows, 64);
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].recipient, recipient) == 0 && strcmp(rows[i].kind, kind) == 0 &&
            (channel == NULL || strcmp(rows[i].channel, channel) == 0)) {
            *out = rows[i];
            return true;
        }
    }
    return false;
}

static bool row_reached(void *arg)
{
    struct row_wait *w = arg;
    static struct store_notification row;
    return find_row(w->d, w->alert, w->recipient, w->kind, w->channel, &row) &&
           strcmp(row.status, w->status) == 0 && row.attempts >= w->min_attempts;
}

/* Waits for the row of (alert, recipient, kind, channel: NULL = any) to reach a status. */
static void expect_row(struct daemon *d, uint64_t alert, const char *recipient, const char *kind,
                       const char *channel, const char *status, unsigned min_attempts,
                       int64_t timeout_ms, struct store_notification *out)
{
    struct row_wait w = {d, alert, recipient, kind, channel, status, min_attempts};
    bool ok = wait_until(row_reached, &w, timeout_ms);
    bool found = find_row(d, alert, recipient, kind, channel, out);
    if (!ok)
        fail_msg("alert %llu: %s row for %s: want %s (attempts >= %u), have %s (attempts %u, "
                 "error \"%s\")",
                 (unsigned long long)alert, kind, recipient, status, min_attempts,
                 found ? out->status : "none", found ? out->attempts : 0,
                 found ? out->last_error : "");
}

static bool webhook_count_at_least(void *arg)
{
    struct fake_webhook_request r;
    return fake_webhook_last(&hook, &r) >= *(int *)arg;
}

static double stat_counter(struct daemon *d, const char *name)
{
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    char path[96];
    snprintf(path, sizeof path, "counters.%s", name);
    double v = json_number(j, path);
    cJSON_Delete(j);
    return v;
}

/* ---------------------------------------------------------------- tests */

/* Opening: SMS + e-mail + webhook once; escalation: a call, then bob; resolve: all-clear. */
static void test_deliver_escalate_resolve(void **state)
{
    struct daemon *d = *state;
    uint64_t id = gas_leak(d, "kitchen-1");
    expect_twilio(false, ALICE, 1, 10000);
    char text[640];
    last_text_to(false, ALICE, text, sizeof text);
    assert_non_null(strstr(text, "Gas leak"));
    assert_true(strlen(text) <= 160 * 4);

    int want_hooks = 1;
    assert_true(wait_until(webhook_count_at_least, &want_hooks, 10000));
    struct fake_webhook_request wr;
    fake_webhook_last(&hook, &wr);
    assert_true(wr.signed_ok);
    assert_non_null(strstr(wr.body, "\"type\":\"alert.opened\""));
    assert_non_null(strstr(wr.body, "\"kind\":\"gas_leak\""));
    assert_non_null(strstr(wr.body, "\"explanation\""));
    assert_string_not_equal(wr.idempotency_key, "");

    struct store_notification row;
    expect_row(d, id, "alice", "alert", "sms", "delivered", 1, 10000, &row);
    expect_row(d, id, "alice", "alert", "email", "delivered", 1, 10000, &row);
    assert_true(row.provider_id[0] != '\0'); /* the server's queue id */
    struct fake_smtp_message mail;
    assert_true(fake_smtp_last(&smtp, &mail) >= 1);
    assert_non_null(strstr(mail.rcpt_to, "alice@example.com"));
    assert_non_null(strstr(mail.data, "Subject:"));

    /* The API explains the alert the way the messages do. */
    char path[64];
    snprintf(path, sizeof path, "/api/v1/alerts/%llu", (unsigned long long)id);
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, path, &j), 200);
    cJSON *ex = cJSON_GetObjectItem(j, "explanation");
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(ex, "title")), "Gas leak"));
    assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(ex, "action")), "gas valve"));
    assert_true(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(ex, "short"))) > 20);
    cJSON_Delete(j);

    /* More readings of the same leak: no second message for the same step. */
    for (int i = 0; i < 5; i++)
        post_reading(d, "kitchen-1", "\"gas_ppm\":6500,\"temperature_c\":21.6");
    assert_int_equal(fake_twilio_count(&twilio, false, ALICE), 1);

    /* Nobody acknowledges: step 1 calls alice, step 2 texts bob (3 s apart). */
    expect_twilio(true, ALICE, 1, 15000);
    char said[640];
    last_text_to(true, ALICE, said, sizeof said);
    assert_non_null(strstr(said, "Gas leak"));
    expect_twilio(false, BOB, 1, 15000);
    expect_row(d, id, "bob", "escalation", "sms", "delivered", 1, 5000, &row);
    assert_int_equal(row.step, 2);
    assert_true(stat_counter(d, "escalations") >= 2);

    /* Resolved by a person: everyone told gets the all-clear; the call's becomes an SMS. */
    assert_int_equal(alert_action(d, id, "resolve"), 200);
    expect_twilio(false, ALICE, 2, 10000);
    last_text_to(false, ALICE, text, sizeof text);
    assert_non_null(
        strstr(text, "Resolved by alice")); /* a person closed it: not "back to normal" */
    expect_twilio(false, BOB, 2, 10000);
    expect_row(d, id, "ops", "all_clear", "webhook", "delivered", 1, 10000, &row);
    fake_webhook_last(&hook, &wr);
    assert_non_null(strstr(wr.body, "\"type\":\"alert.resolved\""));
    assert_int_equal(fake_twilio_count(&twilio, true, ALICE), 1); /* nobody rung for it */
    if (getenv("DELIVERY_PRINT") != NULL) {                       /* what people got, to read it */
        static struct fake_twilio_seen seen[FAKE_TWILIO_HISTORY];
        int n = fake_twilio_history(&twilio, seen, FAKE_TWILIO_HISTORY);
        for (int i = 0; i < n && i < FAKE_TWILIO_HISTORY; i++)
            printf("%s to %s: %s\n", seen[i].call ? "call" : "sms", seen[i].to, seen[i].text);
        fake_smtp_last(&smtp, &mail);
        printf("---- last e-mail ----\n%s\n---- last webhook ----\n%s\n", mail.data, wr.body);
    }
}

/* Acknowledged before the first escalation: no call, ever. */
static void test_ack_stops_escalation(void **state)
{
    struct daemon *d = *state;
    int calls_before = fake_twilio_count(&twilio, true, ALICE);
    int sms_before = fake_twilio_count(&twilio, false, ALICE);
    uint64_t id = gas_leak(d, "kitchen-2");
    expect_twilio(false, ALICE, sms_before + 1, 10000);
    assert_int_equal(alert_action(d, id, "ack"), 200);
    sleep(8); /* more than two escalation intervals */
    assert_int_equal(fake_twilio_count(&twilio, true, ALICE), calls_before);
    struct store_notification rows[16];
    int n = outbox(d, id, rows, 16);
    for (int i = 0; i < n; i++)
        assert_string_not_equal(rows[i].kind, "escalation");
}

/* Twilio answers 503 for a while: the SMS is retried with backoff and delivered after. */
static void test_retry_after_outage(void **state)
{
    struct daemon *d = *state;
    fake_twilio_outage(&twilio, true);
    int sms_before = fake_twilio_count(&twilio, false, ALICE);
    uint64_t id = gas_leak(d, "kitchen-3");
    struct store_notification row;
    expect_row(d, id, "alice", "alert", "sms", "pending", 2, 15000, &row);
    assert_non_null(strstr(row.last_error, "503"));
    assert_int_equal(fake_twilio_count(&twilio, false, ALICE), sms_before);
    /* The e-mail did not wait for Twilio. */
    static struct store_notification rows[16];
    int n = outbox(d, id, rows, 16);
    bool mail_delivered = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].channel, "email") == 0)
            mail_delivered = strcmp(rows[i].status, "delivered") == 0;
    }
    assert_true(mail_delivered);
    fake_twilio_outage(&twilio, false);
    expect_twilio(false, ALICE, sms_before + 1, 10000);
    expect_row(d, id, "alice", "alert", "sms", "delivered", 2, 5000, &row);
    assert_true(row.provider_id[0] == 'S' && row.provider_id[1] == 'M');
    assert_true(stat_counter(d, "notification_retries") >= 2);
    assert_int_equal(alert_action(d, id, "ack"), 200);
}

/* kill -9 with a notification pending; after the restart it is sent. */
static void test_restart_resumes_pending(void **state)
{
    struct daemon *d = *state;
    fake_twilio_outage(&twilio, true);
    int sms_before = fake_twilio_count(&twilio, false, ALICE);
    uint64_t id = gas_leak(d, "kitchen-4");
    struct store_notification row;
    expect_row(d, id, "alice", "alert", "sms", "pending", 1, 15000, &row);
    assert_int_equal(daemon_stop(d, SIGKILL), 128 + SIGKILL);
    fake_twilio_outage(&twilio, false);
    daemon_start(d);
    expect_twilio(false, ALICE, sms_before + 1, 15000);
    expect_row(d, id, "alice", "alert", "sms", "delivered", 2, 5000, &row);
    assert_int_equal(alert_action(d, id, "ack"), 200);
}

/* ---------------------------------------------------------------- quiet hours, limits */

/* A quiet-hours window around now, in UTC ("HH:MM-HH:MM"). */
static void quiet_window_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    int now = tm.tm_hour * 60 + tm.tm_min;
    int from = (now + 1440 - 60) % 1440, to = (now + 60) % 1440;
    snprintf(buf, len, "%02d:%02d-%02d:%02d", from / 60, from % 60, to / 60, to % 60);
}

static int start_policies(void **state)
{
    char extra[1024], window[32];
    quiet_window_now(window, sizeof window);
    snprintf(extra, sizeof extra,
             "[recipient.carol]\nsms = " CAROL "\nquiet_hours = %s\n"
             "[recipient.dave]\nsms = " DAVE "\nrate_limit_per_hour = 2\n"
             "[recipient.erin]\nsms = " BROKEN_PROXY "\n"
             "[recipient.frank]\nsms = " INVALID "\n"
             "[route.hot]\nkinds = threshold\nsteps = sms:carol+sms:dave\n"
             "[route.gas]\nkinds = gas_leak\nsteps = sms:carol+sms:dave+sms:erin+sms:frank, "
             "sms:bob\n",
             window);
    return start_with(state, extra);
}

/* A high temperature (warn level: not critical) on device. */
static uint64_t too_hot(struct daemon *d, const char *device)
{
    for (int i = 0; i < 4; i++)
        post_reading(d, device, "\"temperature_c\":52");
    uint64_t id = alert_id(d, device);
    assert_true(id > 0);
    return id;
}

static void test_quiet_hours_and_rate_limit(void **state)
{
    struct daemon *d = *state;
    /* Three non-critical alerts: carol is in quiet hours (nothing planned for her), dave
     * gets two and the third is held back by his limit. */
    uint64_t a1 = too_hot(d, "oven-1");
    struct store_notification row;
    expect_row(d, a1, "dave", "alert", "sms", "delivered", 1, 10000, &row);
    uint64_t a2 = too_hot(d, "oven-2");
    expect_row(d, a2, "dave", "alert", "sms", "delivered", 1, 10000, &row);
    uint64_t a3 = too_hot(d, "oven-3");
    expect_row(d, a3, "dave", "alert", "sms", "cancelled", 1, 10000, &row);
    assert_non_null(strstr(row.last_error, "rate limit"));
    assert_int_equal(fake_twilio_count(&twilio, false, DAVE), 2);
    assert_false(find_row(d, a1, "carol", "alert", NULL, &row));
    assert_int_equal(fake_twilio_count(&twilio, false, CAROL), 0);
    assert_true(stat_counter(d, "notifications_rate_limited") >= 1);

    /* A critical gas leak ignores both. */
    uint64_t g = gas_leak(d, "cellar-1");
    expect_twilio(false, CAROL, 1, 10000);
    expect_twilio(false, DAVE, 3, 10000);

    /* A permanent failure is recorded with Twilio's code; the escalation still goes on. */
    expect_row(d, g, "frank", "alert", "sms", "failed", 1, 10000, &row);
    assert_non_null(strstr(row.last_error, "21211"));
    expect_row(d, g, "erin", "alert", "sms", "failed", 1, 10000, &row);
    expect_twilio(false, BOB, 1, 15000);
}

/* No secret in the log, in the outbox, or in the API — even when a provider quotes them. */
static void test_secrets_stay_out_of_logs(void **state)
{
    struct daemon *d = *state;
    struct store_notification row;
    uint64_t g = alert_id(d, "cellar-1");
    expect_row(d, g, "erin", "alert", "sms", "failed", 1, 10000, &row);
    assert_null(strstr(row.last_error, TOKEN));
    FILE *f = fopen(d->log, "r");
    assert_non_null(f);
    static char log[1 << 20];
    size_t n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    assert_non_null(strstr(log, "notify.delivered"));
    assert_non_null(strstr(log, "notify.failed"));
    const char *secrets[] = {
        TOKEN, HOOK_SECRET, ADMIN_TOKEN,
        /* base64 of "SID:TOKEN", as in the Authorization header */
        "QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA0Mjp0dy1zZWNyZXQtdG9rZW4tNGYxZQ"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (strstr(log, secrets[i]) != NULL)
            fail_msg("the log holds secret %zu", i);
    }
    /* Phone numbers are personal data: the log names recipients, not their numbers. */
    assert_null(strstr(log, DAVE));
    cJSON *j = NULL;
    assert_int_equal(http_get_json(d, "/api/v1/stats", &j), 200);
    char *text = cJSON_PrintUnformatted(j);
    assert_null(strstr(text, TOKEN));
    free(text);
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------- LLM */

#define LLM_KEY "llm-key-0ddba11"
static struct fake_llm llm;

static int start_llm(void **state)
{
    fake_llm_start(&llm, FAKE_LLM_OPENAI, "canary-test", LLM_KEY);
    char extra[1024];
    snprintf(extra, sizeof extra,
             "[llm]\nprovider = openai\nurl = %s\nmodel = canary-test\napi_key = %s\n"
             "timeout_ms = 700\n"
             "[route.gas]\nkinds = gas_leak\nsteps = sms:alice+email:alice\n",
             llm.base_url, LLM_KEY);
    return start_with(state, extra);
}

static int stop_llm(void **state)
{
    int rc = stop(state);
    fake_llm_stop(&llm);
    return rc;
}

/* The model's text reaches the phone and the mailbox; the prompt holds no secret. */
static void test_llm_writes_the_text(void **state)
{
    struct daemon *d = *state;
    fake_llm_answer(&llm, FAKE_LLM_GOOD, 0);
    uint64_t id = gas_leak(d, "kitchen-7");
    expect_twilio(false, ALICE, 1, 10000);
    char text[640];
    last_text_to(false, ALICE, text, sizeof text);
    assert_string_equal(text, FAKE_LLM_SHORT);
    struct store_notification row;
    expect_row(d, id, "alice", "alert", "email", "delivered", 1, 10000, &row);
    struct fake_smtp_message mail;
    fake_smtp_last(&smtp, &mail);
    assert_non_null(strstr(mail.data, "written by the model"));
    static struct fake_llm_request req;
    int asked = fake_llm_last(&llm, &req);
    assert_int_equal(asked, 1); /* one text per step, shared by its recipients */
    assert_string_equal(req.problem, "");
    assert_true(req.context_ok);
    assert_non_null(strstr(req.user, "kitchen-7"));
    const char *secrets[] = {TOKEN, HOOK_SECRET, ADMIN_TOKEN, LLM_KEY, ALICE, SID};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (strstr(req.body, secrets[i]) != NULL)
            fail_msg("the prompt holds %s", secrets[i]);
    }
    assert_int_equal(alert_action(d, id, "ack"), 200);
}

/* The model does not answer in time: the template goes out, late by the timeout only. */
static void test_llm_timeout_falls_back_to_template(void **state)
{
    struct daemon *d = *state;
    fake_llm_answer(&llm, FAKE_LLM_SLOW, 5000);
    int before = fake_twilio_count(&twilio, false, ALICE);
    int64_t t0 = now_ms();
    uint64_t id = gas_leak(d, "kitchen-8");
    expect_twilio(false, ALICE, before + 1, 10000);
    int64_t took = now_ms() - t0;
    char text[640];
    last_text_to(false, ALICE, text, sizeof text);
    assert_non_null(strstr(text, "Gas leak suspected"));
    assert_null(strstr(text, "written by the model"));
    if (took > 4000)
        fail_msg("the SMS took %lld ms: the LLM's 700 ms timeout did not hold", (long long)took);
    assert_true(stat_counter(d, "llm_fallbacks") >= 1);
    FILE *f = fopen(d->log, "r");
    assert_non_null(f);
    static char log[1 << 20];
    size_t n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    assert_non_null(strstr(log, "notify.llm_fallback"));
    assert_null(strstr(log, LLM_KEY));
    assert_int_equal(alert_action(d, id, "ack"), 200);
}

int main(void)
{
    const struct CMUnitTest main_route[] = {
        cmocka_unit_test(test_deliver_escalate_resolve),
        cmocka_unit_test(test_ack_stops_escalation),
        cmocka_unit_test(test_retry_after_outage),
        cmocka_unit_test(test_restart_resumes_pending),
    };
    const struct CMUnitTest policies[] = {
        cmocka_unit_test(test_quiet_hours_and_rate_limit),
        cmocka_unit_test(test_secrets_stay_out_of_logs),
    };
    int failed = cmocka_run_group_tests_name("delivery", main_route, start_main, stop);
    failed += cmocka_run_group_tests_name("policies", policies, start_policies, stop);
    const struct CMUnitTest writer[] = {
        cmocka_unit_test(test_llm_writes_the_text),
        cmocka_unit_test(test_llm_timeout_falls_back_to_template),
    };
    failed += cmocka_run_group_tests_name("llm", writer, start_llm, stop_llm);
    return failed;
}
