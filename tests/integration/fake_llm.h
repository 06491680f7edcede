/* fake_llm.h — a fake LLM service for the tests of the LLM writer (src/notify/llm.h): an
 * OpenAI-compatible chat-completions endpoint or Google's Gemini generateContent, on a free
 * loopback port (fake_http.h).
 *
 * It checks each request as the real service would, and answers as it does:
 *   openai  POST /v1/chat/completions, Content-Type application/json, "Authorization: Bearer
 *           <key>" when the fake has a key and no Authorization header when it has none (a
 *           local llama.cpp server), a JSON body with exactly the arguments model (the fake's),
 *           messages ([system, user], string contents), temperature (0..2) and max_tokens
 *           (a positive integer); OpenAI refuses unknown arguments and so does the fake.
 *           Errors answer {"error":{"message","type","param","code"}}.
 *   gemini  POST /v1beta/models/<model>:generateContent, Content-Type application/json, the key
 *           in "x-goog-api-key" (never ?key= in the URL, never an Authorization header), a body
 *           with exactly systemInstruction {parts:[{text}]}, contents [{role "user", parts:
 *           [{text}]}] and generationConfig {temperature, responseMimeType
 *           "application/json"}. Errors answer {"error":{"code","message","status"}}.
 * A request that breaks a rule gets the service's error and a note in `problem`; the tests
 * require problem == "" for every request canary makes. The user message must carry a JSON
 * object with "alert" and "draft" (context_ok).
 *
 * What it answers is set with fake_llm_answer(); the last request is recorded whole. */
#ifndef CANARY_TESTS_FAKE_LLM_H
#define CANARY_TESTS_FAKE_LLM_H

#include "fake_http.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* The good answer's fields. */
#define FAKE_LLM_TITLE       "Gas leak in the Kitchen (written by the model)"
#define FAKE_LLM_DESCRIPTION "The kitchen sensor measures 4,800 ppm of methane and rising."
#define FAKE_LLM_ACTION      "Open the windows, do not switch anything on, shut the gas valve."
#define FAKE_LLM_SHORT       "Gas leak in the Kitchen: 4,800 ppm. Ventilate, shut the gas valve."

enum fake_llm_api {
    FAKE_LLM_OPENAI,
    FAKE_LLM_GEMINI,
};

enum fake_llm_answer {
    FAKE_LLM_GOOD,           /* 200, the four fields as a bare JSON object */
    FAKE_LLM_FENCED,         /* 200, the object in ```json fences with sentences around it */
    FAKE_LLM_GARBAGE,        /* 200, prose that holds no JSON object */
    FAKE_LLM_NOT_JSON,       /* 200 with an HTML page instead of the API's JSON */
    FAKE_LLM_HTTP_500,       /* the service's internal error */
    FAKE_LLM_HTTP_429,       /* rate limited, Retry-After: 20 */
    FAKE_LLM_TOO_LONG,       /* "short" of 200 characters */
    FAKE_LLM_TOO_LONG_TITLE, /* "title" of 400 bytes */
    FAKE_LLM_SLOW,           /* the good answer, after delay_ms */
    FAKE_LLM_ECHO_KEY,       /* 401 whose message quotes the key and the auth header back */
};

#define FAKE_LLM_BODY_MAX 65536

struct fake_llm_request {
    char method[16];
    char path[256];
    char query_key[256]; /* a "key" URL parameter (must stay empty) */
    char content_type[128];
    char authorization[512];      /* Authorization header, "" when absent */
    char goog_key[512];           /* x-goog-api-key header, "" when absent */
    char model[128];              /* from the body (openai) or the path (gemini) */
    char system[8192];            /* the system message / systemInstruction text */
    char user[16384];             /* the user message text */
    bool context_ok;              /* the user text holds a JSON object with "alert" and "draft" */
    char body[FAKE_LLM_BODY_MAX]; /* the request body as received (cut to fit) */
    size_t body_len;
    char problem[256]; /* "" = the real service would have accepted the request */
    int status;        /* what the fake answered */
};

struct fake_llm {
    struct fake_http http;
    enum fake_llm_api api;
    char base_url[96]; /* what llm.url is set to: ".../v1" or ".../v1beta" */
    char model[128];
    char api_key[256]; /* "" = the server wants no key */
    pthread_mutex_t lock;
    enum fake_llm_answer answer;
    int delay_ms;
    int requests;
    struct fake_llm_request *last; /* heap: the record is large */
};

/* Starts the fake for one API, serving `model`, wanting api_key ("" = none). */
void fake_llm_start(struct fake_llm *l, enum fake_llm_api api, const char *model,
                    const char *api_key);
void fake_llm_stop(struct fake_llm *l);

/* What the next requests get (delay_ms: for FAKE_LLM_SLOW). */
void fake_llm_answer(struct fake_llm *l, enum fake_llm_answer answer, int delay_ms);

/* A copy of the last request (out may be large: allocate it), and the number so far. */
int fake_llm_last(struct fake_llm *l, struct fake_llm_request *out);

#endif
