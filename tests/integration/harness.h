/* harness.h — integration-test helpers: a real canaryd on a random loopback port with a
 * temporary database, HTTP calls through libcurl, raw sockets for misbehaving clients.
 *
 * Every daemon gets its own directory under /tmp, removed by daemon_cleanup(). canaryd is
 * this build's (CANARYD_PATH); its log goes to <dir>/canaryd.log and is printed when a
 * test fails to start it. */
#ifndef CANARY_TESTS_HARNESS_H
#define CANARY_TESTS_HARNESS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct daemon {
    pid_t pid;
    char dir[64];
    char db[128];
    char log[128];
    unsigned port;
    char base_url[64];
    const char *extra[32]; /* extra canaryd arguments, NULL-terminated */
    const char *ca_file;   /* with an https:// base_url: the CA file http_call trusts */
};

/* Call first thing in a forked child that will run a long-lived process (canaryd, a broker, a
 * proxy): the child is killed when the test process ends, also when a failed assertion ends
 * it early, so no daemon is left holding ports and CPU after a failed run. */
void child_dies_with_test(void);

/* Prepares a daemon with a fresh directory; extra arguments (e.g. "--set",
 * "alerts.open_after=1") may follow, NULL-terminated. Does not start it. */
void daemon_init(struct daemon *d, ...);

/* Starts canaryd and waits until it answers (10 s at most). Fails the test otherwise. */
void daemon_start(struct daemon *d);

/* Sends a signal and waits for the process to exit; returns its exit status (or
 * 128 + signal when killed). */
int daemon_stop(struct daemon *d, int sig);

/* Removes the directory. */
void daemon_cleanup(struct daemon *d);

struct http_response {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t body_len;
    char retry_after[16];
    char content_type[64];
};

/* One HTTP request (a fresh connection each time). content_type may be NULL (then no body
 * is sent unless body != NULL, with no Content-Type). Returns 0, or -1 when the
 * connection failed. */
int http_call(struct daemon *d, const char *method, const char *path, const char *content_type,
              const char *body, size_t body_len, struct http_response *out);

/* The same with extra request headers ("Name: value" strings, NULL-terminated). */
int http_call_with(struct daemon *d, const char *method, const char *path,
                   const char *const *headers, const char *content_type, const char *body,
                   size_t body_len, struct http_response *out);

/* Shortcuts: JSON POST and GET. The response body is parsed into *json when json != NULL
 * (NULL if it is not JSON). */
long http_post_json(struct daemon *d, const char *path, const char *body, cJSON **json);
long http_get_json(struct daemon *d, const char *path, cJSON **json);
void http_response_free(struct http_response *r);

/* The error object of an error response ({"error":{...}}): code and field, for asserts. */
const char *json_error_code(cJSON *root);
const char *json_error_field(cJSON *root);

/* A number at a dotted path ("counters.readings_accepted"), or NAN. */
double json_number(cJSON *root, const char *path);

/* Current Unix time in ms. */
int64_t now_ms(void);

/* Polls fn(arg) every 20 ms until it returns true or timeout_ms passes. */
bool wait_until(bool (*fn)(void *arg), void *arg, int64_t timeout_ms);

/* A raw TCP connection to the daemon (for slow and malformed clients). -1 on failure. */
int raw_connect(struct daemon *d);

#endif
