/* fake_http.h — a small threaded HTTP server on a free loopback port for the fake providers of
 * the notification tests (fake_twilio.h, fake_webhook.h), built on libmicrohttpd.
 *
 * A fake gets each request whole (method, path, headers, body) in its handler and says what
 * to answer: a status, a body, headers, and optionally a delay before answering (a server that
 * hangs). One thread per connection, so a hanging answer holds up nobody else; stopping the
 * server ends every delay at once. */
#ifndef CANARY_TESTS_FAKE_HTTP_H
#define CANARY_TESTS_FAKE_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct MHD_Daemon;
struct MHD_Connection;

struct fake_http_request {
    const char *method;
    const char *path; /* without the query */
    const char *body; /* NUL-terminated */
    size_t body_len;
    struct MHD_Connection *conn; /* for fake_http_header() */
};

#define FAKE_HTTP_BODY_MAX 8192

struct fake_http_response {
    int status;                    /* 0 = 500 */
    char content_type[64];         /* "" = application/json */
    char body[FAKE_HTTP_BODY_MAX]; /* sent as is */
    char retry_after[16];          /* "" = no Retry-After header */
    int delay_ms;                  /* wait before answering; < 0 = until the server stops */
};

typedef void (*fake_http_handler)(void *arg, const struct fake_http_request *req,
                                  struct fake_http_response *res);

struct fake_http {
    struct MHD_Daemon *daemon;
    unsigned port;
    char base_url[64]; /* "http://127.0.0.1:<port>" */
    fake_http_handler handler;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
};

/* Starts the server on 127.0.0.1 and a free port. Fails the test when it cannot. */
void fake_http_start(struct fake_http *s, fake_http_handler handler, void *arg);

/* Ends every pending delay and stops the server (joining its threads). */
void fake_http_stop(struct fake_http *s);

/* A request header's value, or NULL. */
const char *fake_http_header(const struct fake_http_request *req, const char *name);

/* Decodes standard base64 into out (cap bytes); returns the length, or -1 when invalid. */
int fake_base64_decode(const char *in, unsigned char *out, size_t cap);

/* Percent-decodes an application/x-www-form-urlencoded value ('+' is a space) into out. */
void fake_form_decode(const char *in, size_t len, char *out, size_t cap);

/* Finds field `name` in a form body and decodes it into out; false when absent. */
bool fake_form_field(const char *body, const char *name, char *out, size_t cap);

/* A free TCP port on 127.0.0.1 with nothing listening on it (for "connection refused"). */
unsigned fake_closed_port(void);

#endif
