/* fake_llm.c — the fake LLM service (fake_llm.h): the request checks OpenAI's chat
 * completions and Gemini's generateContent make, their answer and error shapes, and the
 * answers a test asks for (good, fenced, garbage, errors, too long, slow, quoting the key). */
#include "fake_llm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPENAI_PATH   "/v1/chat/completions"
#define GEMINI_PREFIX "/v1beta/models/"
#define GEMINI_SUFFIX ":generateContent"

static void set_json(struct fake_http_response *res, int status, cJSON *root)
{
    res->status = status;
    char *s = cJSON_PrintUnformatted(root);
    assert_non_null(s);
    snprintf(res->body, sizeof res->body, "%s", s);
    free(s);
    cJSON_Delete(root);
}

/* {"error":{"message","type","param":null,"code"}} as OpenAI answers. */
static void openai_error(struct fake_http_response *res, int status, const char *message,
                         const char *type, const char *code)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code != NULL)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    set_json(res, status, root);
}

/* {"error":{"code","message","status"}} as Google's APIs answer. */
static void gemini_error(struct fake_http_response *res, int status, const char *message,
                         const char *status_name)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(e, "code", status);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "status", status_name);
    set_json(res, status, root);
}

static void api_error(const struct fake_llm *l, struct fake_http_response *res, int status,
                      const char *message)
{
    if (l->api == FAKE_LLM_OPENAI) {
        const char *type = status == 401   ? "invalid_request_error"
                           : status == 429 ? "requests"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
        openai_error(res, status, message, type, NULL);
    } else {
        const char *name = status == 400   ? "INVALID_ARGUMENT"
                           : status == 401 ? "UNAUTHENTICATED"
                           : status == 403 ? "PERMISSION_DENIED"
                           : status == 404 ? "NOT_FOUND"
                           : status == 429 ? "RESOURCE_EXHAUSTED"
                                           : "INTERNAL";
        gemini_error(res, status, message, name);
    }
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

static bool only_keys(const cJSON *o, const char *const *allowed, char *bad, size_t badlen)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, o)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            known = known || strcmp(item->string, allowed[i]) == 0;
        if (!known) {
            snprintf(bad, badlen, "%s", item->string);
            return false;
        }
    }
    return true;
}

static const char *text_of(const cJSON *parts_holder)
{
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(parts_holder, "parts");
    if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) < 1)
        return NULL;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(parts, 0), "text");
    return cJSON_IsString(text) && text->valuestring[0] ? text->valuestring : NULL;
}

/* Checks an OpenAI request body; fills r. Returns false after answering an error. */
static bool check_openai(const struct fake_llm *l, const cJSON *root, struct fake_llm_request *r,
                         struct fake_http_response *res)
{
    static const char *const allowed[] = {"model", "messages", "temperature", "max_tokens", NULL};
    char bad[128], msg[512];
    if (!only_keys(root, allowed, bad, sizeof bad)) {
        snprintf(msg, sizeof msg, "Unrecognized request argument supplied: %s", bad);
        snprintf(r->problem, sizeof r->problem, "unknown argument %s", bad);
        api_error(l, res, 400, msg);
        return false;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(model))
        copy(r->model, sizeof r->model, model->valuestring);
    if (!cJSON_IsString(model) || strcmp(model->valuestring, l->model) != 0) {
        snprintf(msg, sizeof msg,
                 "The model `%.100s` does not exist or you do not have access to it.", r->model);
        snprintf(r->problem, sizeof r->problem, "wrong or missing model");
        openai_error(res, 404, msg, "invalid_request_error", "model_not_found");
        return false;
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *sys = cJSON_GetArrayItem(msgs, 0), *usr = cJSON_GetArrayItem(msgs, 1);
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(sys, "role");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(sys, "content");
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(usr, "role");
    const cJSON *uc = cJSON_GetObjectItemCaseSensitive(usr, "content");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) != 2 || !cJSON_IsString(sr) ||
        strcmp(sr->valuestring, "system") != 0 || !cJSON_IsString(ur) ||
        strcmp(ur->valuestring, "user") != 0 || !cJSON_IsString(sc) || !cJSON_IsString(uc) ||
        sc->valuestring[0] == '\0' || uc->valuestring[0] == '\0') {
        snprintf(r->problem, sizeof r->problem, "messages are not [system, user] with contents");
        api_error(l, res, 400, "Invalid value for 'messages'.");
        return false;
    }
    copy(r->system, sizeof r->system, sc->valuestring);
    copy(r->user, sizeof r->user, uc->valuestring);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if ((t != NULL && (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 2)) ||
        (mt != NULL && (!cJSON_IsNumber(mt) || mt->valuedouble < 1 ||
                        mt->valuedouble != (double)(long)mt->valuedouble))) {
        snprintf(r->problem, sizeof r->problem, "bad temperature or max_tokens");
        api_error(l, res, 400, "Invalid value for 'temperature' or 'max_tokens'.");
        return false;
    }
    if (t == NULL || mt == NULL) {
        snprintf(r->problem, sizeof r->problem, "temperature and max_tokens must be sent");
        api_error(l, res, 400, "canary's writer must send temperature and max_tokens");
        return false;
    }
    return true;
}

/* Checks a Gemini request body; fills r. Returns false after answering an error. */
static bool check_gemini(const struct fake_llm *l, const cJSON *root, struct fake_llm_request *r,
                         struct fake_http_response *res)
{
    static const char *const allowed[] = {"systemInstruction", "contents", "generationConfig",
                                          NULL};
    char bad[128], msg[512];
    if (!only_keys(root, allowed, bad, sizeof bad)) {
        snprintf(msg, sizeof msg,
                 "Invalid JSON payload received. Unknown name \"%s\": Cannot find field.", bad);
        snprintf(r->problem, sizeof r->problem, "unknown field %s", bad);
        api_error(l, res, 400, msg);
        return false;
    }
    const char *sys = text_of(cJSON_GetObjectItemCaseSensitive(root, "systemInstruction"));
    const cJSON *contents = cJSON_GetObjectItemCaseSensitive(root, "contents");
    const cJSON *c0 = cJSON_GetArrayItem(contents, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(c0, "role");
    const char *user = text_of(c0);
    if (sys == NULL || !cJSON_IsArray(contents) || cJSON_GetArraySize(contents) != 1 ||
        user == NULL || !cJSON_IsString(role) || strcmp(role->valuestring, "user") != 0) {
        snprintf(r->problem, sizeof r->problem,
                 "no systemInstruction text, or contents is not one user turn with text");
        api_error(l, res, 400, "* GenerateContentRequest.contents: contents is not specified");
        return false;
    }
    copy(r->system, sizeof r->system, sys);
    copy(r->user, sizeof r->user, user);
    const cJSON *gc = cJSON_GetObjectItemCaseSensitive(root, "generationConfig");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(gc, "temperature");
    const cJSON *mime = cJSON_GetObjectItemCaseSensitive(gc, "responseMimeType");
    if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 2 || !cJSON_IsString(mime) ||
        strcmp(mime->valuestring, "application/json") != 0) {
        snprintf(r->problem, sizeof r->problem,
                 "generationConfig needs temperature 0..2 and responseMimeType application/json");
        api_error(l, res, 400, "Invalid value at 'generation_config'");
        return false;
    }
    return true;
}

/* The user message holds a JSON object with "alert" and "draft" after its lead sentence. */
static bool context_ok(const char *user)
{
    const char *p = strchr(user, '{');
    cJSON *o = p != NULL ? cJSON_Parse(p) : NULL;
    bool ok = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "alert")) &&
              cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "draft")) &&
              cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "all_clear"));
    cJSON_Delete(o);
    return ok;
}

/* ---- answers ---- */

static char *fields_json(const char *title, const char *shortt, bool pretty)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", title);
    cJSON_AddStringToObject(o, "description", FAKE_LLM_DESCRIPTION);
    cJSON_AddStringToObject(o, "action", FAKE_LLM_ACTION);
    cJSON_AddStringToObject(o, "short", shortt);
    char *s = pretty ? cJSON_Print(o) : cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    assert_non_null(s);
    return s;
}

/* The model's text for the answer mode (malloc'd). */
static char *model_text(enum fake_llm_answer a)
{
    char *fields, *out;
    char longer[512];
    switch (a) {
    case FAKE_LLM_FENCED:
        fields = fields_json(FAKE_LLM_TITLE, FAKE_LLM_SHORT, true);
        out = malloc(strlen(fields) + 128);
        assert_non_null(out);
        sprintf(out, "Here is the alert text you asked for:\n\n```json\n%s\n```\n\nStay safe!",
                fields);
        free(fields);
        return out;
    case FAKE_LLM_GARBAGE:
        return strdup("I'm sorry, I can only write about {cooking}. A gas leak sounds serious: "
                      "please call your gas supplier.");
    case FAKE_LLM_TOO_LONG:
        memset(longer, 0, sizeof longer);
        for (int i = 0; i < 20; i++)
            strcat(longer, "Gas leak! ");
        longer[199] = '!'; /* 200 characters, the last not a space (which would be trimmed) */
        return fields_json(FAKE_LLM_TITLE, longer, false);
    case FAKE_LLM_TOO_LONG_TITLE:
        memset(longer, 0, sizeof longer);
        for (int i = 0; i < 40; i++)
            strcat(longer, "Gas leak! "); /* 400 bytes: more than a title holds */
        return fields_json(longer, FAKE_LLM_SHORT, false);
    default:
        return fields_json(FAKE_LLM_TITLE, FAKE_LLM_SHORT, false);
    }
}

static void answer(const struct fake_llm *l, enum fake_llm_answer a,
                   const struct fake_http_request *req, struct fake_http_response *res)
{
    switch (a) {
    case FAKE_LLM_HTTP_500:
        api_error(l, res, 500,
                  l->api == FAKE_LLM_OPENAI
                      ? "The server had an error while processing your request. Sorry about that!"
                      : "An internal error has occurred. Please retry or report in "
                        "https://developers.generativeai.google/guide/troubleshooting");
        return;
    case FAKE_LLM_HTTP_429:
        api_error(l, res, 429,
                  l->api == FAKE_LLM_OPENAI
                      ? "Rate limit reached for requests. Please try again in 20s."
                      : "Resource has been exhausted (e.g. check quota).");
        snprintf(res->retry_after, sizeof res->retry_after, "20");
        return;
    case FAKE_LLM_NOT_JSON:
        res->status = 200;
        snprintf(res->content_type, sizeof res->content_type, "text/html");
        snprintf(res->body, sizeof res->body,
                 "<html><body><h1>Welcome to nginx!</h1></body></html>\n");
        return;
    case FAKE_LLM_ECHO_KEY: {
        const char *auth = fake_http_header(req, "Authorization");
        const char *goog = fake_http_header(req, "x-goog-api-key");
        char msg[1024];
        snprintf(msg, sizeof msg,
                 "Incorrect API key provided: %s (Authorization: %s, x-goog-api-key: %s). You can "
                 "find your API key in your account settings.",
                 l->api_key, auth ? auth : "", goog ? goog : "");
        api_error(l, res, 401, msg);
        return;
    }
    default:
        break;
    }
    char *text = model_text(a);
    cJSON *root = cJSON_CreateObject();
    if (l->api == FAKE_LLM_OPENAI) {
        cJSON_AddStringToObject(root, "id", "chatcmpl-fake0001");
        cJSON_AddStringToObject(root, "object", "chat.completion");
        cJSON_AddNumberToObject(root, "created", 1763676000);
        cJSON_AddStringToObject(root, "model", l->model);
        cJSON *choices = cJSON_AddArrayToObject(root, "choices");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", "stop");
        cJSON_AddItemToArray(choices, c);
        cJSON *u = cJSON_AddObjectToObject(root, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", 412);
        cJSON_AddNumberToObject(u, "completion_tokens", 96);
        cJSON_AddNumberToObject(u, "total_tokens", 508);
    } else {
        cJSON *cands = cJSON_AddArrayToObject(root, "candidates");
        cJSON *c = cJSON_CreateObject();
        cJSON *content = cJSON_AddObjectToObject(c, "content");
        cJSON *parts = cJSON_AddArrayToObject(content, "parts");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddItemToArray(parts, p);
        cJSON_AddStringToObject(content, "role", "model");
        cJSON_AddStringToObject(c, "finishReason", "STOP");
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddItemToArray(cands, c);
        cJSON *u = cJSON_AddObjectToObject(root, "usageMetadata");
        cJSON_AddNumberToObject(u, "promptTokenCount", 412);
        cJSON_AddNumberToObject(u, "candidatesTokenCount", 96);
        cJSON_AddNumberToObject(u, "totalTokenCount", 508);
        cJSON_AddStringToObject(root, "modelVersion", l->model);
    }
    free(text);
    set_json(res, 200, root);
}

/* ---- the handler ---- */

static void handle(void *arg, const struct fake_http_request *req, struct fake_http_response *res)
{
    struct fake_llm *l = arg;
    struct fake_llm_request *r = calloc(1, sizeof *r);
    assert_non_null(r);
    copy(r->method, sizeof r->method, req->method);
    copy(r->path, sizeof r->path, req->path);
    copy(r->query_key, sizeof r->query_key,
         MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "key"));
    copy(r->content_type, sizeof r->content_type, fake_http_header(req, "Content-Type"));
    copy(r->authorization, sizeof r->authorization, fake_http_header(req, "Authorization"));
    copy(r->goog_key, sizeof r->goog_key, fake_http_header(req, "x-goog-api-key"));
    r->body_len = req->body_len < sizeof r->body - 1 ? req->body_len : sizeof r->body - 1;
    memcpy(r->body, req->body, r->body_len);

    pthread_mutex_lock(&l->lock);
    enum fake_llm_answer mode = l->answer;
    int delay = l->delay_ms;
    pthread_mutex_unlock(&l->lock);

    char msg[512];
    cJSON *root = NULL;
    bool ok = false;
    if (l->api == FAKE_LLM_OPENAI) {
        char want[sizeof l->api_key + 16] = "";
        if (l->api_key[0] != '\0')
            snprintf(want, sizeof want, "Bearer %s", l->api_key);
        if (strcmp(r->path, OPENAI_PATH) != 0) {
            snprintf(msg, sizeof msg, "Invalid URL (%s %.200s)", r->method, r->path);
            snprintf(r->problem, sizeof r->problem, "wrong path %.200s", r->path);
            api_error(l, res, 404, msg);
        } else if (strcmp(r->method, "POST") != 0) {
            snprintf(r->problem, sizeof r->problem, "method %s", r->method);
            api_error(l, res, 405, "Invalid method for URL (only POST)");
        } else if (l->api_key[0] != '\0' && r->authorization[0] == '\0') {
            snprintf(r->problem, sizeof r->problem, "no Authorization header");
            openai_error(res, 401,
                         "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                         "YOUR_KEY).",
                         "invalid_request_error", NULL);
        } else if (l->api_key[0] != '\0' && strcmp(r->authorization, want) != 0) {
            snprintf(r->problem, sizeof r->problem, "wrong Authorization header");
            openai_error(res, 401, "Incorrect API key provided.", "invalid_request_error",
                         "invalid_api_key");
        } else if (l->api_key[0] == '\0' && r->authorization[0] != '\0') {
            snprintf(r->problem, sizeof r->problem, "Authorization sent though no key is set");
            openai_error(res, 401, "Invalid API Key", "authentication_error", NULL);
        } else {
            ok = true;
        }
    } else {
        char want[256];
        snprintf(want, sizeof want, GEMINI_PREFIX "%s" GEMINI_SUFFIX, l->model);
        size_t pl = strlen(GEMINI_PREFIX), sl = strlen(GEMINI_SUFFIX), n = strlen(r->path);
        if (strncmp(r->path, GEMINI_PREFIX, pl) == 0 && n > pl + sl &&
            strcmp(r->path + n - sl, GEMINI_SUFFIX) == 0)
            snprintf(r->model, sizeof r->model, "%.*s", (int)(n - pl - sl), r->path + pl);
        if (strcmp(r->path, want) != 0) {
            snprintf(msg, sizeof msg,
                     "models/%.100s is not found for API version v1beta, or is not supported for "
                     "generateContent.",
                     r->model);
            snprintf(r->problem, sizeof r->problem, "wrong path %.200s", r->path);
            api_error(l, res, 404, msg);
        } else if (strcmp(r->method, "POST") != 0) {
            snprintf(r->problem, sizeof r->problem, "method %s", r->method);
            api_error(l, res, 404, "Method not found.");
        } else if (r->query_key[0] != '\0') {
            snprintf(r->problem, sizeof r->problem, "the API key in the URL");
            api_error(l, res, 400, "canary must not put the API key in the URL");
        } else if (r->authorization[0] != '\0') {
            snprintf(r->problem, sizeof r->problem, "an Authorization header");
            api_error(l, res, 401,
                      "Request had invalid authentication credentials. Expected OAuth 2 access "
                      "token, login cookie or other valid authentication credential.");
        } else if (r->goog_key[0] == '\0') {
            snprintf(r->problem, sizeof r->problem, "no x-goog-api-key");
            api_error(l, res, 403,
                      "Method doesn't allow unregistered callers (callers without established "
                      "identity). Please use API Key or other form of API consumer identity to "
                      "call this API.");
        } else if (strcmp(r->goog_key, l->api_key) != 0) {
            snprintf(r->problem, sizeof r->problem, "wrong x-goog-api-key");
            api_error(l, res, 400, "API key not valid. Please pass a valid API key.");
        } else {
            ok = true;
        }
    }
    if (ok && strncmp(r->content_type, "application/json", 16) != 0) {
        snprintf(r->problem, sizeof r->problem, "Content-Type %.100s", r->content_type);
        api_error(l, res, 400, "Invalid Content-Type header, expected application/json");
        ok = false;
    }
    if (ok) {
        root = cJSON_ParseWithLength(req->body, req->body_len);
        if (!cJSON_IsObject(root)) {
            snprintf(r->problem, sizeof r->problem, "the body is not a JSON object");
            api_error(l, res, 400, "We could not parse the JSON body of your request.");
            ok = false;
        }
    }
    if (ok)
        ok = l->api == FAKE_LLM_OPENAI ? check_openai(l, root, r, res)
                                       : check_gemini(l, root, r, res);
    cJSON_Delete(root);
    if (ok) {
        r->context_ok = context_ok(r->user);
        /* ECHO_KEY answers a well-formed request too: a careless proxy in between. */
        answer(l, mode, req, res);
        if (mode == FAKE_LLM_SLOW)
            res->delay_ms = delay;
    }
    r->status = res->status;
    pthread_mutex_lock(&l->lock);
    l->requests++;
    memcpy(l->last, r, sizeof *r);
    pthread_mutex_unlock(&l->lock);
    free(r);
}

void fake_llm_start(struct fake_llm *l, enum fake_llm_api api, const char *model,
                    const char *api_key)
{
    memset(l, 0, sizeof *l);
    l->api = api;
    copy(l->model, sizeof l->model, model);
    copy(l->api_key, sizeof l->api_key, api_key);
    l->last = calloc(1, sizeof *l->last);
    assert_non_null(l->last);
    pthread_mutex_init(&l->lock, NULL);
    fake_http_start(&l->http, handle, l);
    snprintf(l->base_url, sizeof l->base_url, "%s%s", l->http.base_url,
             api == FAKE_LLM_OPENAI ? "/v1" : "/v1beta");
}

void fake_llm_stop(struct fake_llm *l)
{
    fake_http_stop(&l->http);
    pthread_mutex_destroy(&l->lock);
    free(l->last);
    l->last = NULL;
}

void fake_llm_answer(struct fake_llm *l, enum fake_llm_answer a, int delay_ms)
{
    pthread_mutex_lock(&l->lock);
    l->answer = a;
    l->delay_ms = delay_ms;
    pthread_mutex_unlock(&l->lock);
}

int fake_llm_last(struct fake_llm *l, struct fake_llm_request *out)
{
    pthread_mutex_lock(&l->lock);
    memcpy(out, l->last, sizeof *out);
    int n = l->requests;
    pthread_mutex_unlock(&l->lock);
    return n;
}
