/* test_outbox.c — the store's notification outbox: idempotent adds, claiming due work,
 * finishing, retries, cancelling an alert's escalation, recovery after a crash, listing,
 * notifications written with a batch, bad input, and retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1763676000000LL

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
};

static void open_store(struct fixture *f)
{
    struct store_options opt = {.path = f->path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 4,
                                .chunk_max_span_ms = 3600000};
    char err[256];
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-outbox-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A notification of alert_id, step, to recipient over channel. */
static struct store_notification note(uint64_t alert_id, uint32_t step, const char *kind,
                                      const char *recipient, const char *channel)
{
    struct store_notification n;
    memset(&n, 0, sizeof n);
    n.alert_id = alert_id;
    n.step = step;
    snprintf(n.kind, sizeof n.kind, "%s", kind);
    snprintf(n.channel, sizeof n.channel, "%s", channel);
    snprintf(n.recipient, sizeof n.recipient, "%s", recipient);
    snprintf(n.address, sizeof n.address, "+4915112345678");
    snprintf(n.payload, sizeof n.payload, "{\"title\":\"Gas leak\",\"alert\":%llu}",
             (unsigned long long)alert_id);
    return n;
}

static uint64_t add(struct store *s, const struct store_notification *n, int64_t now_ms,
                    bool *added)
{
    uint64_t id = 0;
    char err[256];
    assert_int_equal(store_outbox_add(s, n, now_ms, &id, added, err, sizeof err), 0);
    assert_true(id > 0);
    return id;
}

static void test_add_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct store_notification n = note(7, 0, "alert", "alice", "sms");
    bool added = false;
    uint64_t id = add(f->s, &n, T0, &added);
    assert_true(added);
    /* Re-evaluating the alert (another reading) adds nothing. */
    snprintf(n.payload, sizeof n.payload, "{\"title\":\"changed\"}");
    assert_int_equal(add(f->s, &n, T0 + 5000, &added), id);
    assert_false(added);
    /* Another step, channel, recipient or kind is another notification. */
    struct store_notification other[] = {
        note(7, 1, "escalation", "alice", "sms"), note(7, 0, "alert", "alice", "voice"),
        note(7, 0, "alert", "bob", "sms"), note(7, 0, "all_clear", "alice", "sms"),
        note(8, 0, "alert", "alice", "sms")};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_true(add(f->s, &other[i], T0, &added) > id);
        assert_true(added);
    }
    /* An explicit key wins over the derived one. */
    struct store_notification t1 = note(0, 0, "test", "ops", "email");
    snprintf(t1.dedupe_key, sizeof t1.dedupe_key, "test/1");
    struct store_notification t2 = t1;
    uint64_t tid = add(f->s, &t1, T0, &added);
    assert_int_equal(add(f->s, &t2, T0, &added), tid);
    assert_false(added);

    struct store_notification got;
    char err[256];
    assert_int_equal(store_outbox_get(f->s, id, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "pending");
    assert_string_equal(got.payload, "{\"title\":\"Gas leak\",\"alert\":7}");
    assert_string_equal(got.dedupe_key, "7/0/alice/sms/alert");
    assert_int_equal(got.attempts, 0);
    assert_int_equal(got.created_ms, T0);
    assert_int_equal(got.next_attempt_ms, T0);
    assert_int_equal(store_outbox_get(f->s, 9999, &got, err, sizeof err), CANARY_ENOTFOUND);
}

static void test_claim_order_and_limit(void **state)
{
    struct fixture *f = *state;
    const char *who[] = {"a", "b", "c", "d", "e"};
    int64_t due[] = {T0 + 300, T0 + 100, T0 + 200, T0 + 100, T0 + 9000};
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        struct store_notification n = note(1, 0, "alert", who[i], "sms");
        n.next_attempt_ms = due[i];
        ids[i] = add(f->s, &n, T0, NULL);
    }
    struct store_notification out[8];
    char err[256];
    assert_int_equal(store_outbox_claim_due(f->s, T0, 0, out, 8, err, sizeof err), 0);
    /* Due first, ties by id; the limit holds. */
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 250, 0, out, 2, err, sizeof err), 2);
    assert_int_equal(out[0].id, ids[1]);
    assert_int_equal(out[1].id, ids[3]);
    assert_string_equal(out[0].status, "sending");
    assert_int_equal(out[0].attempts, 1);
    /* Claimed rows are not claimed again. */
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 250, 0, out, 8, err, sizeof err), 1);
    assert_int_equal(out[0].id, ids[2]);
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 1000, 0, out, 8, err, sizeof err), 1);
    assert_int_equal(out[0].id, ids[0]);
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 1000, 0, out, 0, err, sizeof err), 0);
    struct store_notification got;
    assert_int_equal(store_outbox_get(f->s, ids[1], &got, err, sizeof err), 0);
    assert_string_equal(got.status, "sending");
    assert_int_equal(got.attempts, 1);
    assert_int_equal(got.updated_ms, T0 + 250);
}

static void test_finish_and_retry(void **state)
{
    struct fixture *f = *state;
    struct store_notification a = note(3, 0, "alert", "alice", "sms");
    struct store_notification b = note(3, 0, "alert", "alice", "webhook");
    struct store_notification c = note(3, 0, "alert", "alice", "email");
    uint64_t ia = add(f->s, &a, T0, NULL), ib = add(f->s, &b, T0, NULL),
             ic = add(f->s, &c, T0, NULL);
    struct store_notification out[4], got;
    char err[256];
    assert_int_equal(store_outbox_claim_due(f->s, T0, 0, out, 4, err, sizeof err), 3);

    assert_int_equal(store_outbox_finish(f->s, ia, STORE_OUTBOX_DELIVERED, 0, "SM123", NULL,
                                         T0 + 10, err, sizeof err),
                     0);
    assert_int_equal(store_outbox_get(f->s, ia, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "delivered");
    assert_string_equal(got.provider_id, "SM123");
    assert_int_equal(got.updated_ms, T0 + 10);
    /* Finishing twice is a conflict, an unknown id is not found. */
    assert_int_equal(
        store_outbox_finish(f->s, ia, STORE_OUTBOX_FAILED, 0, NULL, "x", T0 + 11, err, sizeof err),
        CANARY_ECONFLICT);
    assert_non_null(strstr(err, "delivered"));
    assert_int_equal(
        store_outbox_finish(f->s, 4242, STORE_OUTBOX_DELIVERED, 0, NULL, NULL, T0, err, sizeof err),
        CANARY_ENOTFOUND);
    assert_int_equal(store_outbox_finish(f->s, ia, (enum store_outbox_outcome)9, 0, NULL, NULL, T0,
                                         err, sizeof err),
                     CANARY_EINVAL);

    assert_int_equal(store_outbox_finish(f->s, ic, STORE_OUTBOX_FAILED, 0, NULL,
                                         "21211: invalid 'To' number", T0 + 10, err, sizeof err),
                     0);
    assert_int_equal(store_outbox_get(f->s, ic, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "failed");
    assert_string_equal(got.last_error, "21211: invalid 'To' number");

    /* A retry schedule: each retry goes back to pending, due later, and is claimed only
     * then; attempts count every send. */
    int64_t at = T0;
    for (int k = 0; k < 3; k++) {
        int64_t next = at + (1000LL << k);
        assert_int_equal(store_outbox_finish(f->s, ib, STORE_OUTBOX_RETRY, next, NULL, "HTTP 503",
                                             at + 1, err, sizeof err),
                         0);
        assert_int_equal(store_outbox_get(f->s, ib, &got, err, sizeof err), 0);
        assert_string_equal(got.status, "pending");
        assert_int_equal(got.next_attempt_ms, next);
        assert_string_equal(got.last_error, "HTTP 503");
        assert_int_equal(store_outbox_claim_due(f->s, next - 1, 0, out, 4, err, sizeof err), 0);
        assert_int_equal(store_outbox_claim_due(f->s, next, 0, out, 4, err, sizeof err), 1);
        assert_int_equal(out[0].id, ib);
        assert_int_equal(out[0].attempts, (unsigned)k + 2);
        at = next;
    }
    assert_int_equal(
        store_outbox_finish(f->s, ib, STORE_OUTBOX_DELIVERED, 0, "wh-1", NULL, at, err, sizeof err),
        0);
    assert_int_equal(store_outbox_get(f->s, ib, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "delivered");
    assert_int_equal(got.attempts, 4);
    assert_string_equal(got.last_error, "HTTP 503"); /* the last error stays for the record */
}

static void test_cancel_stops_escalation(void **state)
{
    struct fixture *f = *state;
    struct store_notification n0 = note(5, 0, "alert", "alice", "sms");
    struct store_notification n1 = note(5, 1, "escalation", "alice", "voice");
    struct store_notification n2 = note(5, 2, "escalation", "bob", "sms");
    struct store_notification other = note(6, 1, "escalation", "bob", "sms");
    uint64_t i0 = add(f->s, &n0, T0, NULL);
    n1.next_attempt_ms = T0 + 100;
    uint64_t i1 = add(f->s, &n1, T0, NULL);
    n2.next_attempt_ms = T0 + 600000;
    uint64_t i2 = add(f->s, &n2, T0, NULL);
    other.next_attempt_ms = T0 + 500;
    uint64_t io = add(f->s, &other, T0, NULL);
    struct store_notification out[4], got;
    char err[256];
    /* Step 1 is being sent when the alert is acknowledged: it finishes, step 2 does not. */
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 100, 0, out, 4, err, sizeof err), 2);
    size_t cancelled = 99;
    assert_int_equal(
        store_outbox_cancel_alert(f->s, 5, "escalation", T0 + 200, &cancelled, err, sizeof err), 0);
    assert_int_equal(cancelled, 1);
    assert_int_equal(store_outbox_get(f->s, i2, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "cancelled");
    assert_int_equal(store_outbox_get(f->s, i1, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "sending");
    assert_int_equal(store_outbox_get(f->s, i0, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "sending");
    assert_int_equal(store_outbox_get(f->s, io, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "pending");
    /* A cancelled row is never claimed and cannot be finished. */
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 700000, 0, out, 4, err, sizeof err), 1);
    assert_int_equal(out[0].id, io);
    assert_int_equal(
        store_outbox_finish(f->s, i2, STORE_OUTBOX_DELIVERED, 0, NULL, NULL, T0, err, sizeof err),
        CANARY_ECONFLICT);
    /* Cancelling again (or with any kind) finds nothing pending. */
    assert_int_equal(store_outbox_cancel_alert(f->s, 5, NULL, T0, &cancelled, err, sizeof err), 0);
    assert_int_equal(cancelled, 0);
}

static void test_recover_after_crash(void **state)
{
    struct fixture *f = *state;
    struct store_notification a = note(9, 0, "alert", "alice", "sms");
    struct store_notification b = note(9, 0, "alert", "bob", "sms");
    uint64_t ia = add(f->s, &a, T0, NULL), ib = add(f->s, &b, T0, NULL);
    struct store_notification out[4], got;
    char err[256];
    assert_int_equal(store_outbox_claim_due(f->s, T0, 0, out, 4, err, sizeof err), 2);
    assert_int_equal(
        store_outbox_finish(f->s, ia, STORE_OUTBOX_DELIVERED, 0, "SM1", NULL, T0, err, sizeof err),
        0);
    /* The process dies while b is being sent: close without finishing, open again. */
    store_close(f->s);
    open_store(f);
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 50, 0, out, 4, err, sizeof err), 0);
    size_t recovered = 0;
    assert_int_equal(store_outbox_recover(f->s, T0 + 50, &recovered, err, sizeof err), 0);
    assert_int_equal(recovered, 1);
    assert_int_equal(store_outbox_get(f->s, ia, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "delivered");
    /* b is sent again (at least once), its first attempt still counted. */
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 50, 0, out, 4, err, sizeof err), 1);
    assert_int_equal(out[0].id, ib);
    assert_int_equal(out[0].attempts, 2);
    assert_int_equal(store_outbox_recover(f->s, T0 + 60, NULL, err, sizeof err), 0);
}

static void test_list_filters_and_paging(void **state)
{
    struct fixture *f = *state;
    const char *channels[] = {"sms", "voice", "email"};
    uint64_t ids[9];
    for (int i = 0; i < 9; i++) {
        struct store_notification n =
            note((uint64_t)(1 + i % 3), (uint32_t)(i / 3), i / 3 ? "escalation" : "alert", "alice",
                 channels[i % 3]);
        ids[i] = add(f->s, &n, T0 + i, NULL);
    }
    struct store_notification out[16];
    char err[256];
    struct store_outbox_filter all = {.limit = 16};
    assert_int_equal(store_outbox_list(f->s, &all, out, err, sizeof err), 9);
    assert_int_equal(out[0].id, ids[8]); /* newest first */
    assert_int_equal(out[8].id, ids[0]);
    /* Paging: 4 at a time by before_id. */
    struct store_outbox_filter page = {.limit = 4};
    size_t seen = 0;
    for (;;) {
        int n = store_outbox_list(f->s, &page, out, err, sizeof err);
        assert_true(n >= 0);
        if (n == 0)
            break;
        for (int k = 0; k < n; k++)
            assert_int_equal(out[k].id, ids[8 - seen - (size_t)k]);
        seen += (size_t)n;
        page.before_id = out[n - 1].id;
    }
    assert_int_equal(seen, 9);
    struct store_outbox_filter by_alert = {.alert_id = 2, .limit = 16};
    assert_int_equal(store_outbox_list(f->s, &by_alert, out, err, sizeof err), 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(out[k].alert_id, 2);
        assert_string_equal(out[k].channel, "voice");
    }
    struct store_outbox_filter by_channel = {.channel = "email", .alert_id = 3, .limit = 16};
    assert_int_equal(store_outbox_list(f->s, &by_channel, out, err, sizeof err), 3);
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 1, 0, out, 1, err, sizeof err), 1);
    struct store_outbox_filter by_status = {.status = "sending", .limit = 16};
    assert_int_equal(store_outbox_list(f->s, &by_status, out, err, sizeof err), 1);
    assert_int_equal(out[0].id, ids[0]);
    struct store_outbox_filter bad = {.status = "lost", .limit = 16};
    assert_int_equal(store_outbox_list(f->s, &bad, out, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "lost"));
    struct store_outbox_filter bad_channel = {.channel = "pigeon", .limit = 16};
    assert_int_equal(store_outbox_list(f->s, &bad_channel, out, err, sizeof err), CANARY_EINVAL);
}

static int count_all(struct store *s)
{
    static struct store_notification out[32];
    struct store_outbox_filter all = {.limit = 32};
    char err[256];
    return store_outbox_list(s, &all, out, err, sizeof err);
}

static void test_batch_commits_and_rolls_back(void **state)
{
    struct fixture *f = *state;
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 11;
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_THRESHOLD;
    a.severity = SEVERITY_CRITICAL;
    a.state = ALERT_STATE_OPEN;
    a.opened_ms = a.updated_ms = T0;
    struct store_notification ns[2] = {note(11, 0, "alert", "alice", "sms"),
                                       note(11, 0, "alert", "alice", "whatsapp")};
    ns[0].created_ms = ns[1].created_ms = T0;
    struct store_batch b = {.alerts = &a, .n_alerts = 1, .notifications = ns, .n_notifications = 2};
    char err[256];
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    assert_int_equal(count_all(f->s), 2);
    /* The same transition committed again (a retried batch) adds no notification. */
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    assert_int_equal(count_all(f->s), 2);
    struct alert got;
    assert_int_equal(store_alert_get(f->s, 11, &got, err, sizeof err), 0);

    /* A batch that fails stores neither its alert nor its notifications: a bad row in it
     * is refused with a message naming it. */
    struct alert a2 = a;
    a2.id = 12;
    struct store_notification bad[2] = {note(12, 0, "alert", "bob", "sms"),
                                        note(12, 0, "alert", "bob", "pigeon")};
    struct store_batch b2 = {
        .alerts = &a2, .n_alerts = 1, .notifications = bad, .n_notifications = 2};
    assert_int_equal(store_write(f->s, &b2, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "notification 1"));
    assert_non_null(strstr(err, "channel"));
    assert_int_equal(store_alert_get(f->s, 12, &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(count_all(f->s), 2);

    /* A storage failure inside the transaction rolls everything back too: a reader handle
     * cannot write, so its batch fails and leaves nothing. */
    struct store *ro;
    struct store_options opt = {.path = f->path, .read_only = true, .busy_timeout_ms = 1000};
    assert_int_equal(store_open(&ro, &opt, err, sizeof err), 0);
    bad[1] = note(12, 0, "alert", "bob", "voice");
    assert_int_equal(store_write(ro, &b2, err, sizeof err), CANARY_EIO);
    store_close(ro);
    assert_int_equal(store_alert_get(f->s, 12, &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(count_all(f->s), 2);
    /* Written by the writer, both arrive. */
    assert_int_equal(store_write(f->s, &b2, err, sizeof err), 0);
    assert_int_equal(store_alert_get(f->s, 12, &got, err, sizeof err), 0);
    assert_int_equal(count_all(f->s), 4);
}

static void test_bad_input(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct {
        struct store_notification n;
        const char *field;
    } cases[8];
    for (int i = 0; i < 8; i++)
        cases[i].n = note(1, 0, "alert", "alice", "sms");
    snprintf(cases[0].n.kind, sizeof cases[0].n.kind, "reminder");
    cases[0].field = "kind";
    snprintf(cases[1].n.channel, sizeof cases[1].n.channel, "fax");
    cases[1].field = "channel";
    cases[2].n.recipient[0] = '\0';
    cases[2].field = "recipient";
    cases[3].n.address[0] = '\0';
    cases[3].field = "address";
    snprintf(cases[4].n.payload, sizeof cases[4].n.payload, "not json");
    cases[4].field = "payload";
    memset(cases[5].n.payload, 'x', sizeof cases[5].n.payload); /* unterminated */
    cases[5].field = "payload";
    memset(cases[6].n.kind, 'a', sizeof cases[6].n.kind);
    cases[6].field = "kind";
    memset(cases[7].n.dedupe_key, 'k', sizeof cases[7].n.dedupe_key);
    cases[7].field = "dedupe_key";
    for (int i = 0; i < 8; i++) {
        err[0] = '\0';
        uint64_t id = 0;
        assert_int_equal(store_outbox_add(f->s, &cases[i].n, T0, &id, NULL, err, sizeof err),
                         CANARY_EINVAL);
        assert_non_null(strstr(err, cases[i].field));
    }
    assert_int_equal(count_all(f->s), 0);
}

static void test_purge_finished(void **state)
{
    struct fixture *f = *state;
    const char *who[] = {"a", "b", "c", "d", "e"};
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        struct store_notification n = note(1, 0, "alert", who[i], "sms");
        ids[i] = add(f->s, &n, T0, NULL);
    }
    struct store_notification out[8], got;
    char err[256];
    /* a: delivered, b: failed, c: sending, d: cancelled (later claimed rows stay), e: pending */
    assert_int_equal(store_outbox_claim_due(f->s, T0, 0, out, 3, err, sizeof err), 3);
    assert_int_equal(store_outbox_finish(f->s, ids[0], STORE_OUTBOX_DELIVERED, 0, "x", NULL,
                                         T0 + 10, err, sizeof err),
                     0);
    assert_int_equal(store_outbox_finish(f->s, ids[1], STORE_OUTBOX_FAILED, 0, NULL, "bad", T0 + 10,
                                         err, sizeof err),
                     0);
    struct store_notification d = note(2, 1, "escalation", "d", "sms");
    uint64_t id_d = add(f->s, &d, T0, NULL);
    assert_int_equal(store_outbox_cancel_alert(f->s, 2, NULL, T0 + 10, NULL, err, sizeof err), 0);
    size_t deleted = 0;
    /* Too early: nothing finished is old enough. */
    assert_int_equal(store_purge(f->s, 0, T0 + 5, 100, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_purge(f->s, 0, T0 + 1000, 100, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(store_outbox_get(f->s, ids[0], &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(store_outbox_get(f->s, ids[1], &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(store_outbox_get(f->s, id_d, &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(store_outbox_get(f->s, ids[2], &got, err, sizeof err), 0);
    assert_string_equal(got.status, "sending");
    assert_int_equal(store_outbox_get(f->s, ids[4], &got, err, sizeof err), 0);
    assert_string_equal(got.status, "pending");
    /* A purged key may be used again: the old row is gone. */
    struct store_notification again = note(1, 0, "alert", "a", "sms");
    bool added = false;
    add(f->s, &again, T0 + 2000, &added);
    assert_true(added);
}

/* Delivery threads serve classes of channels: a claim takes only its channels, the next-due
 * query sees only them, a cancelled finish records why, and delivered rows count toward a
 * recipient's hourly limit. */
static void test_channels_cancel_and_counts(void **state)
{
    struct fixture *f = *state;
    char err[256];
    int64_t due = 0;
    assert_int_equal(store_outbox_next_due(f->s, 0, &due, err, sizeof err), 0);
    assert_true(due == INT64_MAX); /* nothing pending */
    struct store_notification sms = note(1, 0, "alert", "alice", "sms");
    struct store_notification mail = note(1, 0, "alert", "alice", "email");
    struct store_notification hook = note(1, 0, "alert", "ops", "webhook");
    sms.next_attempt_ms = T0 + 30;
    mail.next_attempt_ms = T0 + 10;
    hook.next_attempt_ms = T0 + 20;
    add(f->s, &sms, T0, NULL);
    add(f->s, &mail, T0, NULL);
    add(f->s, &hook, T0, NULL);
    unsigned twilio = STORE_CHANNEL_SMS | STORE_CHANNEL_WHATSAPP | STORE_CHANNEL_VOICE;
    assert_int_equal(store_outbox_next_due(f->s, twilio, &due, err, sizeof err), 0);
    assert_int_equal(due, T0 + 30);
    assert_int_equal(store_outbox_next_due(f->s, 0, &due, err, sizeof err), 0);
    assert_int_equal(due, T0 + 10);
    struct store_notification out[4];
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 100, twilio, out, 4, err, sizeof err), 1);
    assert_string_equal(out[0].channel, "sms");
    assert_int_equal(store_outbox_claim_due(f->s, T0 + 100,
                                            STORE_CHANNEL_WEBHOOK | STORE_CHANNEL_EMAIL, out, 4,
                                            err, sizeof err),
                     2);
    assert_string_equal(out[0].channel, "email"); /* the earlier due first */
    assert_string_equal(out[1].channel, "webhook");
    assert_int_equal(store_outbox_next_due(f->s, 0, &due, err, sizeof err), 0);
    assert_true(due == INT64_MAX); /* 'sending' rows are not pending */

    uint64_t sms_id = 0, mail_id = out[0].id, hook_id = out[1].id;
    struct store_notification all[4];
    struct store_outbox_filter fl = {.channel = "sms", .limit = 4};
    assert_int_equal(store_outbox_list(f->s, &fl, all, err, sizeof err), 1);
    sms_id = all[0].id;
    assert_int_equal(store_outbox_finish(f->s, sms_id, STORE_OUTBOX_DELIVERED, 0, "SM1", NULL,
                                         T0 + 200, err, sizeof err),
                     0);
    assert_int_equal(store_outbox_finish(f->s, mail_id, STORE_OUTBOX_DELIVERED, 0, "Q1", NULL,
                                         T0 + 300, err, sizeof err),
                     0);
    assert_int_equal(store_outbox_finish(f->s, hook_id, STORE_OUTBOX_CANCELLED, 0, NULL,
                                         "rate limit: ops already got 2", T0 + 400, err,
                                         sizeof err),
                     0);
    struct store_notification got;
    assert_int_equal(store_outbox_get(f->s, hook_id, &got, err, sizeof err), 0);
    assert_string_equal(got.status, "cancelled");
    assert_string_equal(got.last_error, "rate limit: ops already got 2");
    /* Finishing it again is a conflict: it is no longer 'sending'. */
    assert_int_equal(store_outbox_finish(f->s, hook_id, STORE_OUTBOX_DELIVERED, 0, "x", NULL,
                                         T0 + 500, err, sizeof err),
                     CANARY_ECONFLICT);

    uint64_t count = 99;
    assert_int_equal(store_outbox_delivered_since(f->s, "alice", T0, &count, err, sizeof err), 0);
    assert_int_equal(count, 2);
    assert_int_equal(store_outbox_delivered_since(f->s, "alice", T0 + 250, &count, err, sizeof err),
                     0);
    assert_int_equal(count, 1);
    assert_int_equal(store_outbox_delivered_since(f->s, "ops", T0, &count, err, sizeof err), 0);
    assert_int_equal(count, 0); /* cancelled is not delivered */
    assert_int_equal(store_outbox_delivered_since(f->s, "nobody", 0, &count, err, sizeof err), 0);
    assert_int_equal(count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_order_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_stops_escalation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commits_and_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_finished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_cancel_and_counts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
