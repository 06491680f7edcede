/* test_notifications_api.c — GET /api/v1/notifications and /api/v1/notifications/<id>
 * (src/api/api_notifications.c) on a real canaryd.
 *
 * The outbox is filled before canaryd starts, through the store's own interface
 * (store_outbox_add, store_outbox_cancel_alert); the outcomes a delivery worker would record
 * (delivered with a provider id, failed with an error that quotes the number) are set with
 * one SQL statement each, so the test needs no provider and no delivery thread (canaryd runs
 * with notify.workers=0). Covered: the list newest first with every field, the filters,
 * paging with before/next_before until the end, the masking of phone numbers, e-mail
 * addresses and webhook URLs (in the address and in the error text: no full number, no URL
 * path or password anywhere in a response), the payload's event, 400 naming the parameter
 * for bad values and unknown parameters, and 404 for a missing notification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1763676000000LL

#define NR_ALICE "+4915112345678"
#define NR_BOB   "+4915198765432"
#define NR_CAROL "+15005550001"
#define HOOK_URL "https://ops:hunter2pw@hooks.example.com:8443/t/path-t0ken?sig=abc"

/* Full addresses and secrets that must never appear in any response. */
static const char *const never[] = {NR_ALICE,          NR_BOB,        NR_CAROL,     "4915112345678",
                                    "4915198765432",   "15005550001", "path-t0ken", "hunter2pw",
                                    "ops@example.com", NULL};

struct fixture {
    struct daemon d;
    uint64_t id[8]; /* the rows added, in order (ids rise) */
    size_t n;
};

static struct store_notification row(uint64_t alert_id, uint32_t step, const char *kind,
                                     const char *recipient, const char *channel,
                                     const char *address, const char *payload)
{
    struct store_notification n;
    memset(&n, 0, sizeof n);
    n.alert_id = alert_id;
    n.step = step;
    snprintf(n.kind, sizeof n.kind, "%s", kind);
    snprintf(n.channel, sizeof n.channel, "%s", channel);
    snprintf(n.recipient, sizeof n.recipient, "%s", recipient);
    snprintf(n.address, sizeof n.address, "%s", address);
    snprintf(n.payload, sizeof n.payload, "%s", payload);
    return n;
}

static void sql(const char *db, const char *statement)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(h, statement, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", statement, err ? err : "?");
    sqlite3_close(h);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    *state = f;
    daemon_init(&f->d, "--set", "notify.workers=0", NULL);

    struct store_options opt = {.path = f->d.db, .busy_timeout_ms = 5000};
    struct store *s;
    char err[256];
    if (store_open(&s, &opt, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    const char *opened = "{\"event\":\"opened\",\"cycle_ms\":1763676000000,\"severity\":\"high\"}";
    struct store_notification rows[] = {
        row(7, 0, "alert", "alice", "sms", NR_ALICE, opened),
        row(7, 0, "alert", "alice", "email", "ops@example.com", opened),
        row(7, 1, "escalation", "bob", "voice", NR_BOB, "{\"event\":\"opened\"}"),
        row(8, 0, "alert", "ops", "webhook", HOOK_URL, "{\"title\":\"no event here\"}"),
        row(8, 0, "alert", "carol", "whatsapp", NR_CAROL, "{\"event\":\"escalated\"}"),
        row(0, 0, "test", "alice", "sms", NR_ALICE, ""),
    };
    f->n = sizeof rows / sizeof rows[0];
    for (size_t i = 0; i < f->n; i++) {
        bool added = false;
        if (store_outbox_add(s, &rows[i], T0 + (int64_t)i * 1000, &f->id[i], &added, err,
                             sizeof err) != 0)
            fail_msg("store_outbox_add: %s", err);
        assert_true(added);
        assert_true(i == 0 || f->id[i] > f->id[i - 1]);
    }
    size_t cancelled = 0;
    assert_int_equal(
        store_outbox_cancel_alert(s, 7, "escalation", T0 + 9000, &cancelled, err, sizeof err), 0);
    assert_int_equal(cancelled, 1);
    store_close(s);

    /* What a delivery worker records: alice's SMS delivered, carol's WhatsApp refused with
     * Twilio's message, which quotes her number (with and without the "+"). */
    char stmt[1024];
    snprintf(stmt, sizeof stmt,
             "UPDATE notifications SET status='delivered', attempts=1, updated_ms=%lld,"
             " provider_id='SM0123456789abcdef0123456789abcdef' WHERE id=%llu;"
             "UPDATE notifications SET status='failed', attempts=3, updated_ms=%lld,"
             " last_error='twilio whatsapp: HTTP 400, code 21211: The ''To'' number "
             "whatsapp:" NR_CAROL " (15005550001) is not a valid phone number; also tried "
             "+4930123456789' WHERE id=%llu;",
             T0 + 20000, (unsigned long long)f->id[0], T0 + 30000, (unsigned long long)f->id[4]);
    sql(f->d.db, stmt);

    daemon_start(&f->d);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(daemon_stop(&f->d, SIGTERM), 0);
    daemon_cleanup(&f->d);
    free(f);
    return 0;
}

/* GETs path; fails unless the status is want or a full address shows in the raw body.
 * Returns the parsed body. */
static cJSON *get(struct fixture *f, const char *path, long want)
{
    struct http_response r;
    assert_int_equal(http_call(&f->d, "GET", path, NULL, NULL, 0, &r), 0);
    if (r.status != want)
        fail_msg("GET %s: %ld, wanted %ld: %s", path, r.status, want, r.body);
    for (size_t i = 0; never[i] != NULL; i++) {
        if (strstr(r.body, never[i]) != NULL)
            fail_msg("GET %s shows \"%s\": %s", path, never[i], r.body);
    }
    cJSON *j = cJSON_Parse(r.body);
    if (j == NULL)
        fail_msg("GET %s: not JSON: %s", path, r.body);
    http_response_free(&r);
    return j;
}

static cJSON *items(cJSON *root)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "notifications");
    assert_true(cJSON_IsArray(arr));
    return arr;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        fail_msg("field %s is not a string", name);
    return v->valuestring;
}

static bool is_null(const cJSON *o, const char *name)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, name));
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v))
        fail_msg("field %s is not a number", name);
    return v->valuedouble;
}

/* The item with the given id in a list answer (fails when absent). */
static cJSON *find(cJSON *root, uint64_t id)
{
    cJSON *it;
    cJSON_ArrayForEach(it, items(root))
    {
        if ((uint64_t)num(it, "id") == id)
            return it;
    }
    fail_msg("notification %llu not in the list", (unsigned long long)id);
    return NULL;
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    cJSON *root = get(f, "/api/v1/notifications", 200);
    cJSON *arr = items(root);
    assert_int_equal(cJSON_GetArraySize(arr), (int)f->n);
    assert_true(is_null(root, "next_before"));
    /* Newest first. */
    for (size_t i = 0; i < f->n; i++)
        assert_int_equal((uint64_t)num(cJSON_GetArrayItem(arr, (int)i), "id"), f->id[f->n - 1 - i]);

    /* Alice's SMS: every field; the number masked; delivered, so no next attempt. */
    cJSON *it = find(root, f->id[0]);
    assert_int_equal(num(it, "alert_id"), 7);
    assert_int_equal(num(it, "step"), 0);
    assert_string_equal(str(it, "kind"), "alert");
    assert_string_equal(str(it, "channel"), "sms");
    assert_string_equal(str(it, "recipient"), "alice");
    assert_string_equal(str(it, "address"), "+49*********78");
    assert_string_equal(str(it, "status"), "delivered");
    assert_int_equal(num(it, "attempts"), 1);
    assert_true(is_null(it, "next_attempt_ms"));
    assert_int_equal((int64_t)num(it, "created_ms"), T0);
    assert_int_equal((int64_t)num(it, "updated_ms"), T0 + 20000);
    assert_string_equal(str(it, "provider_id"), "SM0123456789abcdef0123456789abcdef");
    assert_true(is_null(it, "last_error"));
    assert_string_equal(str(it, "event"), "opened");

    /* E-mail: first character and domain. Pending: its next attempt is shown. */
    it = find(root, f->id[1]);
    assert_string_equal(str(it, "address"), "o***@example.com");
    assert_string_equal(str(it, "status"), "pending");
    assert_int_equal(num(it, "attempts"), 0);
    assert_int_equal((int64_t)num(it, "next_attempt_ms"), T0 + 1000);
    assert_true(is_null(it, "provider_id"));

    /* Bob's escalation call was cancelled. */
    it = find(root, f->id[2]);
    assert_string_equal(str(it, "address"), "+49*********32");
    assert_string_equal(str(it, "kind"), "escalation");
    assert_int_equal(num(it, "step"), 1);
    assert_string_equal(str(it, "status"), "cancelled");

    /* Webhook: scheme, host and port only; no event in its payload. */
    it = find(root, f->id[3]);
    assert_string_equal(str(it, "address"), "https://hooks.example.com:8443");
    assert_true(is_null(it, "event"));

    /* Carol's failure: the number masked in the address and in the error text, every form. */
    it = find(root, f->id[4]);
    assert_string_equal(str(it, "address"), "+15*******01");
    assert_string_equal(str(it, "status"), "failed");
    assert_int_equal(num(it, "attempts"), 3);
    const char *e = str(it, "last_error");
    assert_non_null(strstr(e, "code 21211"));
    assert_non_null(strstr(e, "whatsapp:+15*******01"));
    assert_non_null(strstr(e, "(15*******01)"));
    assert_non_null(strstr(e, "+49*********89")); /* a number it did not know: masked too */
    assert_string_equal(str(it, "event"), "escalated");

    /* A test message: no alert; an empty payload has no event. */
    it = find(root, f->id[5]);
    assert_true(is_null(it, "alert_id"));
    assert_string_equal(str(it, "kind"), "test");
    assert_true(is_null(it, "event"));
    cJSON_Delete(root);
}

/* The ids a filtered list returns, newest first, as "id,id,..." */
static void ids_of(struct fixture *f, const char *query, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/notifications?%s", query);
    cJSON *root = get(f, path, 200);
    out[0] = '\0';
    cJSON *it;
    cJSON_ArrayForEach(it, items(root))
    {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s%llu", n ? "," : "", (unsigned long long)num(it, "id"));
    }
    cJSON_Delete(root);
}

static void test_filters(void **state)
{
    struct fixture *f = *state;
    char got[128], want[128];
    ids_of(f, "status=delivered", got, sizeof got);
    snprintf(want, sizeof want, "%llu", (unsigned long long)f->id[0]);
    assert_string_equal(got, want);

    ids_of(f, "alert=8", got, sizeof got);
    snprintf(want, sizeof want, "%llu,%llu", (unsigned long long)f->id[4],
             (unsigned long long)f->id[3]);
    assert_string_equal(got, want);

    ids_of(f, "channel=sms", got, sizeof got);
    snprintf(want, sizeof want, "%llu,%llu", (unsigned long long)f->id[5],
             (unsigned long long)f->id[0]);
    assert_string_equal(got, want);

    ids_of(f, "alert=7&channel=sms&status=delivered", got, sizeof got);
    snprintf(want, sizeof want, "%llu", (unsigned long long)f->id[0]);
    assert_string_equal(got, want);

    ids_of(f, "status=sending", got, sizeof got);
    assert_string_equal(got, "");
    ids_of(f, "alert=99", got, sizeof got);
    assert_string_equal(got, "");
}

static void test_paging(void **state)
{
    struct fixture *f = *state;
    char path[128] = "/api/v1/notifications?limit=2";
    size_t seen = 0;
    for (int page = 0; page < 10; page++) {
        cJSON *root = get(f, path, 200);
        cJSON *it;
        cJSON_ArrayForEach(it, items(root))
        {
            assert_true(seen < f->n);
            assert_int_equal((uint64_t)num(it, "id"), f->id[f->n - 1 - seen]);
            seen++;
        }
        cJSON *next = cJSON_GetObjectItemCaseSensitive(root, "next_before");
        if (cJSON_IsNull(next)) {
            assert_true(cJSON_GetArraySize(items(root)) < 2);
            cJSON_Delete(root);
            break;
        }
        assert_true(cJSON_IsNumber(next));
        assert_int_equal((uint64_t)next->valuedouble, f->id[f->n - seen]);
        snprintf(path, sizeof path, "/api/v1/notifications?limit=2&before=%llu",
                 (unsigned long long)next->valuedouble);
        cJSON_Delete(root);
    }
    assert_int_equal(seen, f->n);

    /* Paging composes with a filter. */
    char q[128];
    snprintf(q, sizeof q, "/api/v1/notifications?alert=7&limit=1&before=%llu",
             (unsigned long long)f->id[2]);
    cJSON *root = get(f, q, 200);
    assert_int_equal(cJSON_GetArraySize(items(root)), 1);
    assert_int_equal((uint64_t)num(cJSON_GetArrayItem(items(root), 0), "id"), f->id[1]);
    assert_int_equal((uint64_t)num(root, "next_before"), f->id[1]);
    cJSON_Delete(root);
}

static void test_one(void **state)
{
    struct fixture *f = *state;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/notifications/%llu", (unsigned long long)f->id[4]);
    cJSON *it = get(f, path, 200);
    assert_int_equal((uint64_t)num(it, "id"), f->id[4]);
    assert_string_equal(str(it, "address"), "+15*******01");
    assert_string_equal(str(it, "recipient"), "carol");
    cJSON_Delete(it);

    snprintf(path, sizeof path, "/api/v1/notifications/%llu", (unsigned long long)f->id[3]);
    it = get(f, path, 200);
    assert_string_equal(str(it, "address"), "https://hooks.example.com:8443");
    cJSON_Delete(it);

    it = get(f, "/api/v1/notifications/999999", 404);
    assert_string_equal(json_error_code(it), "not_found");
    assert_string_equal(json_error_field(it), "id");
    cJSON_Delete(it);

    const char *bad_ids[] = {"abc", "0", "-1", "1x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/notifications/%s", bad_ids[i]);
        it = get(f, path, 400);
        assert_string_equal(json_error_field(it), "id");
        cJSON_Delete(it);
    }
    it = get(f, "/api/v1/notifications/1?x=1", 400);
    assert_string_equal(json_error_field(it), "x");
    cJSON_Delete(it);
}

static void test_bad_parameters(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *query;
        const char *field;
    } cases[] = {
        {"limit=0", "limit"},       {"limit=abc", "limit"},     {"limit=501", "limit"},
        {"limit=-5", "limit"},      {"limit=", "limit"},        {"status=bogus", "status"},
        {"status=", "status"},      {"before=-1", "before"},    {"before=0", "before"},
        {"before=x1", "before"},    {"alert=seven", "alert"},   {"alert=0", "alert"},
        {"channel=fax", "channel"}, {"channel=SMS", "channel"}, {"state=open", "state"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/notifications?%s", cases[i].query);
        cJSON *root = get(f, path, 400);
        const char *code = json_error_code(root);
        const char *field = json_error_field(root);
        if (code == NULL || strcmp(code, "bad_query") != 0 || field == NULL ||
            strcmp(field, cases[i].field) != 0)
            fail_msg("?%s: code %s field %s, wanted bad_query %s", cases[i].query,
                     code ? code : "(none)", field ? field : "(none)", cases[i].field);
        cJSON_Delete(root);
    }
    /* The largest page is fine. */
    cJSON *root = get(f, "/api/v1/notifications?limit=500", 200);
    assert_int_equal(cJSON_GetArraySize(items(root)), (int)f->n);
    cJSON_Delete(root);

    /* Read-only: no other method. */
    struct http_response r;
    assert_int_equal(
        http_call(&f->d, "POST", "/api/v1/notifications", "application/json", "{}", 2, &r), 0);
    assert_int_equal(r.status, 405);
    http_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),           cmocka_unit_test(test_filters),
        cmocka_unit_test(test_paging),         cmocka_unit_test(test_one),
        cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
