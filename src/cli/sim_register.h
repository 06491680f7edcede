/* sim_register.h — `canary simulate --register` for the MQTT transport: tells canaryd each
 * simulated device's name, location and kind (PATCH <url>/api/v1/devices/<id>, docs/API.md)
 * from a thread of its own, so that the MQTT loop never waits for HTTP. Also the JSON body
 * of a registration, which the HTTP transport (sim_http.c) sends too.
 *
 * Over MQTT there is no HTTP answer per reading to hang a registration on, and canaryd
 * ingests MQTT asynchronously: it knows a device only once that device's first reading is
 * committed, and answers 404 before that. So the MQTT transport queues a device here once
 * its first reading has left (PUBACKed at QoS 1), and a 404 is retried.
 *
 * Promises:
 *  - sim_register_queue() does no I/O and never waits for the worker: it builds the request,
 *    takes one lock for a list append, signals the worker and returns;
 *  - the worker sends one request at a time on one kept-alive libcurl easy handle; a 404,
 *    408, 429, any 5xx and connection errors are retried after 250 ms, 500 ms, 1 s, then
 *    every 2 s, until SIM_REGISTER_GIVE_UP_MS after the device was queued; a 2xx registers
 *    the device; any other answer refuses it at once. After a connection error, 408, 429 or
 *    5xx (canaryd away or overloaded) every device's request waits by the same ladder, so a
 *    large fleet does not hammer a canaryd that is down;
 *  - once sim_register_stop() has returned, every device queued is counted exactly once as
 *    registered or failed (refused, given up on, abandoned by the stop, or not queued for
 *    want of memory): registered + failed = queued;
 *  - sim_register_stop() returns promptly: it abandons what is still waiting, and a request
 *    under way is aborted within about a second (libcurl's progress callback).
 *
 * Threads: sim_register_start(), _queue(), _busy(), _stop(), _counts() and _free() are
 * called from one thread (the simulator's loop); only the worker thread does HTTP. */
#ifndef CANARY_CLI_SIM_REGISTER_H
#define CANARY_CLI_SIM_REGISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_REGISTER_GIVE_UP_MS 30000 /* retries of one device stop this long after queueing */
#define SIM_REGISTER_TEXT_MAX   127   /* bytes of a name, location or kind canaryd keeps */
/* Bytes sim_register_body() needs at most, NUL included, for strings of up to
 * SIM_REGISTER_TEXT_MAX bytes each (an escape takes at most 6 bytes per byte). */
#define SIM_REGISTER_BODY_MAX (3 * 6 * SIM_REGISTER_TEXT_MAX + 64)

/* Writes {"name":"...","location":"...","kind":"..."} into buf, each string escaped as
 * RFC 8259 section 7 requires (quote, backslash and control characters; other bytes go as
 * they are, so UTF-8 stays UTF-8). Returns the length (NUL excluded), or CANARY_ELIMIT when
 * len is too small (then buf holds no partial body: buf[0] is NUL when len > 0). */
int sim_register_body(const char *name, const char *location, const char *kind, char *buf,
                      size_t len);

struct sim_register_counts {
    uint64_t queued;     /* devices handed to sim_register_queue() */
    uint64_t registered; /* answered 2xx */
    uint64_t not_found;  /* 404 answers: each retried, or the last one before giving up */
    uint64_t failed;     /* refused, given up on, abandoned or not queued */
    uint64_t gave_up;    /* of failed: still retrying SIM_REGISTER_GIVE_UP_MS after queueing */
    uint64_t abandoned;  /* of failed: still waiting when sim_register_stop() ran */
    uint64_t requests;   /* PATCH requests sent (or attempted) */
    uint64_t errors;     /* of requests: connection errors, 408, 429 and 5xx, retried */
};

struct sim_register;

/* Starts the worker thread. base_url is canaryd's base URL ("http://127.0.0.1:8080",
 * trailing slashes ignored; copied); ca_file, when not NULL, the CA of an https:// one
 * (cli_tls.h; not copied: it must outlive the worker). quiet suppresses the worker's messages on
 * stderr (it prints at most a few: a refusal, a give-up, a connection error). Returns 0 and *out,
 * or CANARY_ENOMEM / CANARY_EIO (libcurl or the thread could not start) with a message in err; then
 * *out is NULL and nothing needs freeing. */
int sim_register_start(struct sim_register **out, const char *base_url, const char *ca_file,
                       bool quiet, char *err, size_t errlen);

/* Queues the registration of one device. id is a device id (letters, digits and . _ : -,
 * as canaryd requires), which goes into the URL as it is; name, location and kind are
 * copied, each at most SIM_REGISTER_TEXT_MAX bytes. Queue each device once. Returns 0, or
 * CANARY_EINVAL (a bad id or string) / CANARY_ENOMEM, the device then counting as failed;
 * after sim_register_stop() it only counts the device as failed. */
int sim_register_queue(struct sim_register *r, const char *id, const char *name,
                       const char *location, const char *kind);

/* True while a queued device is neither registered nor failed. Takes the lock. */
bool sim_register_busy(struct sim_register *r);

/* Abandons what is waiting, aborts a request under way, and joins the worker. Safe to call
 * twice. */
void sim_register_stop(struct sim_register *r);

/* The counts; final once sim_register_stop() has returned (call it only after). */
void sim_register_counts(const struct sim_register *r, struct sim_register_counts *out);

/* Stops the worker if it runs and frees everything. Safe on NULL. */
void sim_register_free(struct sim_register *r);

#endif
