/* test_fakephone.c — a smoke test of canary-fakephone (tools/fakephone.c), the demo's pretend
 * phone network, run as the demo runs it: this build's binary (CANARY_FAKEPHONE_PATH) on a free
 * loopback port (--port 0, the port read from --port-file), the token from the environment.
 *
 * Checked with libcurl, the way canaryd talks to Twilio: a message and a call with the right
 * credentials get 201 with a Twilio sid (SM... / CA..., 34 characters) and appear on the fake's
 * stdout as a phone would show them (the contact's name, the text, the call's <Say> text with
 * its XML entities decoded, said twice but shown once); a wrong token gets 401 with Twilio's
 * error object (code 20003) and a message without Body 400/21602, and neither shows on the
 * phone; SIGINT stops it with exit status 0 and a count of what it delivered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SID     "ACfa4e0000111122223333444455556666"
#define TOKEN   "fakephone-t0ken"
#define FROM_NR "+15005550006"
#define TO_NR   "+15550100"

static pid_t phone = -1;
static char dir[64];
static char out_path[128], err_path[128], port_path[128];
static char base_url[96]; /* http://127.0.0.1:<port>/2010-04-01/Accounts/<SID> */

/* The whole of a file, NUL-terminated and malloc'd ("" when it does not exist). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    assert_non_null(buf);
    if (f != NULL) {
        size_t n;
        while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
            len += n;
            if (cap - len < 2) {
                cap *= 2;
                buf = realloc(buf, cap);
                assert_non_null(buf);
            }
        }
        fclose(f);
    }
    buf[len] = '\0';
    return buf;
}

static bool phone_says(void *needle)
{
    char *out = slurp(out_path);
    bool found = strstr(out, needle) != NULL;
    free(out);
    return found;
}

/* Fails the test unless the phone's stdout shows `needle` within 5 s. */
static void assert_phone_shows(const char *needle)
{
    if (!wait_until(phone_says, (void *)needle, 5000)) {
        char *out = slurp(out_path);
        print_error("the phone did not show \"%s\"; its stdout:\n%s\n", needle, out);
        free(out);
        fail();
    }
}

struct answer {
    long status;
    char body[8192];
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t take = size * n;
    if (take > sizeof a->body - 1 - a->len)
        take = sizeof a->body - 1 - a->len;
    memcpy(a->body + a->len, data, take);
    a->len += take;
    a->body[a->len] = '\0';
    return size * n;
}

/* POSTs a form (the fields already URL-encoded) to <base_url>/<resource> with Basic auth
 * SID:token, as canaryd's Twilio channel does; returns the answer's JSON (caller frees). */
static cJSON *post(const char *resource, const char *token, const char *form, long *status)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[256];
    snprintf(url, sizeof url, "%s/%s", base_url, resource);
    struct answer a = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, SID);
    curl_easy_setopt(h, CURLOPT_PASSWORD, token);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/json"));
    curl_easy_cleanup(h);
    *status = a.status;
    cJSON *json = cJSON_Parse(a.body);
    if (json == NULL)
        print_error("not JSON: %s\n", a.body);
    assert_non_null(json);
    return json;
}

static const char *json_string(cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* Twilio's error object: {"code","message","more_info","status"}. */
static void assert_twilio_error(cJSON *root, long status, int code)
{
    assert_int_equal((long)json_number(root, "status"), status);
    assert_int_equal((int)json_number(root, "code"), code);
    assert_true(strlen(json_string(root, "message")) > 0);
    char more[96];
    snprintf(more, sizeof more, "https://www.twilio.com/docs/errors/%d", code);
    assert_string_equal(json_string(root, "more_info"), more);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    snprintf(dir, sizeof dir, "/tmp/canary-fakephone-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    snprintf(port_path, sizeof port_path, "%s/port", dir);

    phone = fork();
    assert_true(phone >= 0);
    if (phone == 0) {
        child_dies_with_test();
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(127);
        setenv("FAKEPHONE_AUTH_TOKEN", TOKEN, 1); /* the token as the demo passes it */
        execl(CANARY_FAKEPHONE_PATH, CANARY_FAKEPHONE_PATH, "--port", "0", "--port-file", port_path,
              "--account-sid", SID, "--contact", TO_NR "=operator", (char *)NULL);
        _exit(127);
    }

    unsigned port = 0;
    for (int i = 0; i < 500 && port == 0; i++) {
        char *text = slurp(port_path);
        port = (unsigned)strtoul(text, NULL, 10);
        free(text);
        if (port == 0)
            usleep(10 * 1000);
    }
    if (port == 0) {
        char *err = slurp(err_path);
        print_error("canary-fakephone did not write its port; stderr:\n%s\n", err);
        free(err);
        return -1;
    }
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u/2010-04-01/Accounts/" SID, port);
    /* The first line of stdout names the same port. */
    char first[64];
    snprintf(first, sizeof first, "http://127.0.0.1:%u", port);
    return phone_says(first) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (phone > 0) { /* test_clean_shutdown did not get to run */
        kill(phone, SIGKILL);
        waitpid(phone, NULL, 0);
    }
    unlink(out_path);
    unlink(err_path);
    unlink(port_path);
    rmdir(dir);
    curl_global_cleanup();
    return 0;
}

static void test_sms_shows_on_the_phone(void **state)
{
    (void)state;
    long status = 0;
    cJSON *res = post("Messages.json", TOKEN,
                      "To=%2B15550100&From=%2B15005550006&Body=Gas+leak+suspected+in+Kitchen+1%3A+"
                      "methane+at+4%2C800+ppm",
                      &status);
    assert_int_equal(status, 201);
    const char *sid = json_string(res, "sid");
    assert_int_equal(strlen(sid), 34);
    assert_memory_equal(sid, "SM", 2);
    assert_string_equal(json_string(res, "to"), TO_NR);
    assert_string_equal(json_string(res, "from"), FROM_NR);
    assert_string_equal(json_string(res, "account_sid"), SID);
    assert_string_equal(json_string(res, "status"), "queued");
    cJSON_Delete(res);

    assert_phone_shows("📱 SMS to " TO_NR " (operator)  from " FROM_NR);
    assert_phone_shows("   Gas leak suspected in Kitchen 1: methane at 4,800 ppm\n");
}

static void test_call_shows_what_it_says(void **state)
{
    (void)state;
    /* The Twiml canary sends: the text twice, XML-escaped, with a pause between. */
    long status = 0;
    cJSON *res = post("Calls.json", TOKEN,
                      "To=%2B15550100&From=%2B15005550006&Twiml=%3CResponse%3E%3CSay+voice%3D%22"
                      "alice%22%3EFire+%26amp%3B+smoke+in+%26lt%3BWorkshop+2%26gt%3B%3C%2FSay%3E"
                      "%3CPause+length%3D%221%22%2F%3E%3CSay+voice%3D%22alice%22%3EFire+%26amp%3B+"
                      "smoke+in+%26lt%3BWorkshop+2%26gt%3B%3C%2FSay%3E%3C%2FResponse%3E",
                      &status);
    assert_int_equal(status, 201);
    const char *sid = json_string(res, "sid");
    assert_int_equal(strlen(sid), 34);
    assert_memory_equal(sid, "CA", 2);
    cJSON_Delete(res);

    assert_phone_shows("📞 CALL to " TO_NR " (operator)  from " FROM_NR);
    assert_phone_shows("   says: \"Fire & smoke in <Workshop 2>\"\n   (says it again)\n");
}

static void test_refusals_are_twilio_shaped(void **state)
{
    (void)state;
    long status = 0;
    cJSON *res = post("Messages.json", "not-the-token",
                      "To=%2B15550100&From=%2B15005550006&Body=wrong+token", &status);
    assert_int_equal(status, 401);
    assert_twilio_error(res, 401, 20003);
    cJSON_Delete(res);

    res = post("Messages.json", TOKEN, "To=%2B15550100&From=%2B15005550006", &status);
    assert_int_equal(status, 400);
    assert_twilio_error(res, 400, 21602);
    cJSON_Delete(res);

    res = post("Calls.json", TOKEN, "To=%2B15550100&From=%2B15005550006", &status);
    assert_int_equal(status, 400);
    assert_twilio_error(res, 400, 21205);
    cJSON_Delete(res);

    /* Nothing refused reaches the phone's screen (the log lines go to stderr). */
    char *out = slurp(out_path);
    assert_null(strstr(out, "wrong token"));
    assert_null(strstr(out, "error"));
    free(out);
    char *err = slurp(err_path);
    assert_non_null(strstr(err, "401, error 20003"));
    assert_null(strstr(err, TOKEN)); /* the log never quotes the token */
    free(err);
}

static void test_clean_shutdown(void **state)
{
    (void)state;
    assert_int_equal(kill(phone, SIGINT), 0);
    int ws = 0;
    assert_int_equal(waitpid(phone, &ws, 0), phone);
    phone = -1;
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_phone_shows("stopped (SIGINT); delivered 1 message and 1 call, refused 3 requests\n");
}

int main(void)
{
    /* In this order: the shutdown counts what the others sent. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sms_shows_on_the_phone),
        cmocka_unit_test(test_call_shows_what_it_says),
        cmocka_unit_test(test_refusals_are_twilio_shaped),
        cmocka_unit_test(test_clean_shutdown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
