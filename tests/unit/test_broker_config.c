/* test_broker_config.c — unit tests of the pure part of `canary broker-config`
 * (src/cli/broker_config.c): the Mosquitto $7$ password hash against a vector made by
 * mosquitto_passwd 2.0.11, device id validation, and the ACL text — exact rules for good
 * ids, and no hostile id (line breaks, wildcards, '/', ':', spaces, overlong, canaryd's own
 * name, duplicates) able to add or widen a rule. That Mosquitto accepts the hashes and
 * enforces the ACL is tests/integration/test_broker_config.c. */
#include "cli/broker_config.h"
#include "core/error.h"
#include "unit_support.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* `mosquitto_passwd -c -b pwfile alice secret` (Mosquitto 2.0.11) wrote this line; the salt
 * is random, so the vector is its salt put back through our hash. */
static const char vector_line[] = "$7$101$GDyiekJmraduecLu$MIsMFAk3wFX/o6tLr0XdoN4Jrzxo6SOsO43l"
                                  "dqSl1HVLy40u2324UYkZ0XJeVrIkXRYdNHxnYyzdhLOHmiZ0hA==";

static void test_hash_matches_mosquitto_passwd(void **state)
{
    (void)state;
    unsigned char salt[16];
    int n = EVP_DecodeBlock(salt, (const unsigned char *)"GDyiekJmraduecLu", 16);
    assert_int_equal(n, 12);
    char out[BROKER_HASH_TEXT_MAX];
    assert_int_equal(broker_config_hash("secret", salt, 12, 101, out, sizeof out), 0);
    assert_string_equal(out, vector_line);
    /* Another password, or another iteration count, gives another hash of the same form. */
    assert_int_equal(broker_config_hash("secreT", salt, 12, 101, out, sizeof out), 0);
    assert_string_not_equal(out, vector_line);
    assert_int_equal(broker_config_hash("secret", salt, 12, 1000, out, sizeof out), 0);
    assert_memory_equal(out, "$7$1000$GDyiekJmraduecLu$", 24);
    assert_int_equal(strlen(out), 3 + 5 + 17 + 88);
}

static void test_hash_refusals(void **state)
{
    (void)state;
    unsigned char salt[12] = {0};
    char out[BROKER_HASH_TEXT_MAX], small[40];
    assert_int_equal(broker_config_hash("x", salt, 0, 101, out, sizeof out), CANARY_EINVAL);
    assert_int_equal(broker_config_hash("x", salt, 12, 0, out, sizeof out), CANARY_EINVAL);
    assert_int_equal(broker_config_hash("x", salt, 12, 101, small, sizeof small), CANARY_EINVAL);
}

static void test_id_validation(void **state)
{
    (void)state;
    assert_true(broker_config_id_valid("kitchen-1", 64));
    assert_true(broker_config_id_valid("Sensor_2.b", 64));
    const char *bad[] = {"",     "a/b",  "+",    "#",     "a+",  "a#",  "a:b",  "a b",
                         "a\tb", "a\nb", "a\r",  "%u",    "%c",  "é",   "a\"b", "a'b",
                         "a;b",  "a\\b", "$SYS", "a\x01", "a*b", "a,b", "a=b",  "a@b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (broker_config_id_valid(bad[i], 64))
            fail_msg("id '%s' was accepted", bad[i]);
    }
    char longest[65];
    memset(longest, 'a', 64);
    longest[64] = '\0';
    assert_true(broker_config_id_valid(longest, 64));
    assert_false(broker_config_id_valid(longest, 10)); /* ingest.max_device_len */
    char too_long[66];
    memset(too_long, 'a', 65);
    too_long[65] = '\0';
    assert_false(broker_config_id_valid(too_long, 1000)); /* never above BROKER_ID_MAX */
}

static const struct broker_acl base = {
    .prefix = "canary", .canaryd_user = "canaryd", .ha_prefix = "homeassistant", .max_id_len = 64};

static void test_acl_exact_rules(void **state)
{
    (void)state;
    const char *ids[] = {"kitchen-1", "porch.2"};
    char *text = NULL, err[256];
    assert_int_equal(broker_config_acl(&base, ids, 2, &text, err, sizeof err), 0);
    /* The rule lines, comments and blank lines left out, in order. */
    const char *want = "user canaryd\n"
                       "topic read canary/#\n"
                       "topic write canary/+/cmd\n"
                       "user kitchen-1\n"
                       "topic write canary/kitchen-1/up\n"
                       "topic write canary/kitchen-1/status\n"
                       "topic write canary/kitchen-1/cmd/ack\n"
                       "topic read canary/kitchen-1/cmd\n"
                       "user porch.2\n"
                       "topic write canary/porch.2/up\n"
                       "topic write canary/porch.2/status\n"
                       "topic write canary/porch.2/cmd/ack\n"
                       "topic read canary/porch.2/cmd\n";
    char rules[2048] = "";
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        strcat(rules, line);
        strcat(rules, "\n");
    }
    assert_string_equal(rules, want);
    free(text);
}

static void test_acl_home_assistant(void **state)
{
    (void)state;
    struct broker_acl acl = base;
    acl.prefix = "plant";
    acl.ha_discovery = true;
    acl.ha_prefix = "ha";
    const char *ids[] = {"d1"};
    char *text = NULL, err[256];
    assert_int_equal(broker_config_acl(&acl, ids, 1, &text, err, sizeof err), 0);
    assert_non_null(strstr(text, "user canaryd\ntopic read plant/#\ntopic write plant/+/cmd\n"));
    assert_non_null(strstr(text, "\ntopic write plant/+/state\ntopic readwrite ha/#\n"));
    assert_non_null(strstr(text, "\nuser d1\ntopic write plant/d1/up\n"));
    assert_null(strstr(text, "canary/"));
    free(text);
}

static void test_acl_hostile_ids_refused(void **state)
{
    (void)state;
    const char *hostile[] = {
        "x\ntopic readwrite #",
        "x\nuser canaryd",
        "+",
        "#",
        "canary/#",
        "a/../b",
        "a b",
        "a:b",
        "",
        "%u",
        "canaryd", /* canaryd's own user name */
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *ids[] = {"good-1", hostile[i]};
        char *text = (char *)"untouched", err[256] = "";
        assert_int_equal(broker_config_acl(&base, ids, 2, &text, err, sizeof err), CANARY_EINVAL);
        assert_null(text);
        assert_true(strlen(err) > 0);
    }
    /* Duplicates, a bad prefix, a bad canaryd user. */
    const char *dup[] = {"a", "a"};
    char *text, err[256];
    assert_int_equal(broker_config_acl(&base, dup, 2, &text, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "twice"));
    struct broker_acl acl = base;
    acl.prefix = "canary/#";
    assert_int_equal(broker_config_acl(&acl, dup, 1, &text, err, sizeof err), CANARY_EINVAL);
    acl = base;
    acl.canaryd_user = "root\nuser x";
    assert_int_equal(broker_config_acl(&acl, dup, 1, &text, err, sizeof err), CANARY_EINVAL);
    acl = base;
    acl.max_id_len = 3;
    const char *longid[] = {"abcd"};
    assert_int_equal(broker_config_acl(&acl, longid, 1, &text, err, sizeof err), CANARY_EINVAL);
}

/* Whatever the id, an accepted one yields exactly four rules under its own user: a fuzz of
 * random bytes from a small hostile alphabet. */
static void test_acl_fuzz_ids(void **state)
{
    (void)state;
    const char alphabet[] = "ab-_.:/+#% \n\r\t\"$";
    unsigned long seed = 12345;
    int accepted = 0;
    for (int round = 0; round < 5000; round++) {
        char id[12];
        int len = 1 + (int)(seed % 10);
        for (int i = 0; i < len; i++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            id[i] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
        }
        id[len] = '\0';
        const char *ids[] = {id};
        char *text = NULL, err[256];
        int rc = broker_config_acl(&base, ids, 1, &text, err, sizeof err);
        if (rc != 0) {
            assert_int_equal(rc, CANARY_EINVAL);
            continue;
        }
        accepted++;
        int users = 0, topics = 0;
        for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            users += strncmp(line, "user ", 5) == 0;
            topics += strncmp(line, "topic ", 6) == 0;
            assert_true(line[0] == '#' || strncmp(line, "user ", 5) == 0 ||
                        strncmp(line, "topic ", 6) == 0);
        }
        assert_int_equal(users, 2);
        assert_int_equal(topics, 2 + 4);
        free(text);
    }
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_mosquitto_passwd),
        cmocka_unit_test(test_hash_refusals),
        cmocka_unit_test(test_id_validation),
        cmocka_unit_test(test_acl_exact_rules),
        cmocka_unit_test(test_acl_home_assistant),
        cmocka_unit_test(test_acl_hostile_ids_refused),
        cmocka_unit_test(test_acl_fuzz_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
