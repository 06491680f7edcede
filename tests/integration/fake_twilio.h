/* fake_twilio.h — a fake of Twilio's REST API for the notification tests: Messages.json (SMS,
 * WhatsApp) and Calls.json, on a free loopback port.
 *
 * It checks what real Twilio checks and answers the way Twilio does (status, JSON error
 * object {"code","message","more_info","status"}, 201 with a "sid"):
 *   - POST only, to /2010-04-01/Accounts/<sid>/Messages.json or .../Calls.json, with the
 *     account the fake was started with (else 404, error 20404);
 *   - HTTP Basic auth sid:token (else 401, error 20003);
 *   - Content-Type application/x-www-form-urlencoded; To and From (21604, 21603), Body for
 *     messages (21602), Twiml for calls (21205), Twiml well-formed XML of <Response> with
 *     <Say> and <Pause> (12100); "whatsapp:" on both addresses or on neither (63007).
 * The recipient picks the answer, like Twilio's magic test numbers:
 *   +15005550006 and any other number   201, sid "SM..." (message) or "CA..." (call)
 *   +15005550001   400, 21211 invalid 'To' number
 *   +15005550002   400, 21612 cannot route to this number
 *   +15005550004   400, 21610 the recipient unsubscribed (STOP)
 *   +15005550009   400, 21614 not a mobile number
 *   +15005550608   400, 21608 unverified number on a trial account
 *   +15005550429   429, 20429 with Retry-After: 7
 *   +15005550500   500, 20500
 *   +15005550503   503 with an HTML page (a load balancer, not Twilio's JSON)
 *   +15005550666   400 whose message quotes the auth token and the Authorization header (a
 *                  careless proxy: tests check that canary masks them)
 *   +15005550777   no answer until the fake stops (a hung connection)
 * Every request is recorded (the last one's fields, and a count). */
#ifndef CANARY_TESTS_FAKE_TWILIO_H
#define CANARY_TESTS_FAKE_TWILIO_H

#include "fake_http.h"

#include <pthread.h>
#include <stdbool.h>

struct fake_twilio_request {
    char method[16];
    char path[256];
    char user[128]; /* Basic auth */
    char password[128];
    char content_type[128];
    char to[128], from[128], body[2048], twiml[4096];
    char say[2048];     /* the text of every <Say>, entity-decoded, joined by '|' */
    char say_voice[64]; /* the first <Say>'s voice attribute */
    bool twiml_ok;      /* the Twiml parsed as the fake expects */
    int status;         /* what the fake answered */
};

/* What the fake keeps of every request (fake_twilio_history). */
struct fake_twilio_seen {
    bool call;      /* Calls.json (else Messages.json) */
    char to[128];   /* as sent ("whatsapp:+..." for WhatsApp) */
    char text[640]; /* Body, or the first <Say> of a call */
    int status;
};
#define FAKE_TWILIO_HISTORY 256

struct fake_twilio {
    struct fake_http http;
    char account_sid[64];
    char auth_token[64];
    pthread_mutex_t lock;
    int requests;
    unsigned next_sid;
    struct fake_twilio_request last;
    bool outage; /* answer every request 503 (fake_twilio_outage) */
    struct fake_twilio_seen history[FAKE_TWILIO_HISTORY];
    int n_history;
};

/* Starts the fake for this account. */
void fake_twilio_start(struct fake_twilio *t, const char *account_sid, const char *auth_token);
void fake_twilio_stop(struct fake_twilio *t);

/* A copy of the last request, and the number of requests so far. */
int fake_twilio_last(struct fake_twilio *t, struct fake_twilio_request *out);

/* From now on, answer every request with Twilio's 503 (on = true: an outage), or serve
 * normally again. Requests during an outage are recorded with status 503. */
void fake_twilio_outage(struct fake_twilio *t, bool on);

/* Copies up to cap recorded requests (oldest first) into out; returns how many were made
 * in all (the history keeps the first FAKE_TWILIO_HISTORY). */
int fake_twilio_history(struct fake_twilio *t, struct fake_twilio_seen *out, int cap);

/* Requests that got a 201 whose To ends with `to` (NULL = any), calls or messages. */
int fake_twilio_count(struct fake_twilio *t, bool call, const char *to);

#endif
