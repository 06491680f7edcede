/* fake_twilio.c — the fake Twilio REST API (fake_twilio.h): request checks as Twilio makes
 * them, Twilio's answer shapes, and a strict little XML reader for the Twiml of calls. */
#include "fake_twilio.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MORE_INFO "https://www.twilio.com/docs/errors/"

static void error_json(struct fake_http_response *res, int status, int code, const char *message)
{
    /* The message goes into a JSON string: escape what would break it. */
    char esc[1024];
    size_t o = 0;
    for (const char *p = message; *p && o + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\')
            esc[o++] = '\\';
        esc[o++] = *p;
    }
    esc[o] = '\0';
    res->status = status;
    snprintf(res->body, sizeof res->body,
             "{\"code\":%d,\"message\":\"%s\",\"more_info\":\"" MORE_INFO "%d\",\"status\":%d}",
             code, esc, code, status);
}

/* ---- a strict reader for the Twiml canary sends ---- */

struct xml {
    const char *p;
    bool ok;
    char *say; /* decoded <Say> texts joined by '|' */
    size_t say_cap, say_len;
    char *voice; /* first Say voice */
    size_t voice_cap;
    int says;
};

static void say_add(struct xml *x, char c)
{
    if (x->say_len + 1 < x->say_cap) {
        x->say[x->say_len++] = c;
        x->say[x->say_len] = '\0';
    }
}

static bool name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* An entity at x->p (after '&'): appends its character to out (when not NULL). */
static bool entity(struct xml *x, bool into_say)
{
    static const struct {
        const char *name;
        char c;
    } known[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t n = strlen(known[i].name);
        if (strncmp(x->p, known[i].name, n) == 0) {
            if (into_say)
                say_add(x, known[i].c);
            x->p += n;
            return true;
        }
    }
    return false;
}

static bool element(struct xml *x, int depth);

/* Content up to the closing tag of `name`. */
static bool content(struct xml *x, const char *name, size_t nl, int depth, bool is_say)
{
    for (;;) {
        char c = *x->p;
        if (c == '\0')
            return false;
        if (c == '<') {
            if (x->p[1] == '/') {
                x->p += 2;
                if (strncmp(x->p, name, nl) != 0 || x->p[nl] != '>')
                    return false;
                x->p += nl + 1;
                return true;
            }
            if (is_say)
                return false; /* <Say> holds text only */
            if (!element(x, depth + 1))
                return false;
            continue;
        }
        if (c == '&') {
            x->p++;
            if (!entity(x, is_say))
                return false;
            continue;
        }
        if ((unsigned char)c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return false; /* not allowed in XML 1.0 */
        if (is_say)
            say_add(x, c);
        else if (c != ' ' && c != '\n' && c != '\t' && c != '\r')
            return false; /* no stray text between elements */
        x->p++;
    }
}

static bool element(struct xml *x, int depth)
{
    if (*x->p != '<' || depth > 4)
        return false;
    x->p++;
    const char *name = x->p;
    while (name_char(*x->p))
        x->p++;
    size_t nl = (size_t)(x->p - name);
    if (nl == 0)
        return false;
    bool is_response = nl == 8 && strncmp(name, "Response", 8) == 0;
    bool is_say = nl == 3 && strncmp(name, "Say", 3) == 0;
    bool is_pause = nl == 5 && strncmp(name, "Pause", 5) == 0;
    if ((depth == 0) != is_response || (depth == 1 && !is_say && !is_pause))
        return false;
    /* Attributes: name="value", values without '<' and with valid entities. */
    for (;;) {
        while (*x->p == ' ')
            x->p++;
        if (*x->p == '/' || *x->p == '>')
            break;
        const char *an = x->p;
        while (name_char(*x->p))
            x->p++;
        size_t al = (size_t)(x->p - an);
        if (al == 0 || x->p[0] != '=' || x->p[1] != '"')
            return false;
        x->p += 2;
        const char *v = x->p;
        while (*x->p && *x->p != '"') {
            if (*x->p == '<')
                return false;
            if (*x->p == '&') {
                x->p++;
                if (!entity(x, false))
                    return false;
                continue;
            }
            x->p++;
        }
        if (*x->p != '"')
            return false;
        if (is_say && x->says == 0 && al == 5 && strncmp(an, "voice", 5) == 0)
            snprintf(x->voice, x->voice_cap, "%.*s", (int)(x->p - v), v);
        x->p++;
    }
    if (*x->p == '/') {
        if (x->p[1] != '>')
            return false;
        x->p += 2;
        return !is_say && !is_response;
    }
    x->p++; /* '>' */
    if (is_say && x->says++ > 0)
        say_add(x, '|');
    return content(x, name, nl, depth, is_say);
}

static bool parse_twiml(const char *s, struct fake_twilio_request *r)
{
    struct xml x = {s, true, r->say, sizeof r->say, 0, r->say_voice, sizeof r->say_voice, 0};
    r->say[0] = '\0';
    r->say_voice[0] = '\0';
    return element(&x, 0) && *x.p == '\0' && x.says > 0;
}

/* ---- the API ---- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void basic_auth(const struct fake_http_request *req, struct fake_twilio_request *r)
{
    const char *h = fake_http_header(req, "Authorization");
    r->user[0] = r->password[0] = '\0';
    if (h == NULL || strncmp(h, "Basic ", 6) != 0)
        return;
    unsigned char raw[512];
    int n = fake_base64_decode(h + 6, raw, sizeof raw - 1);
    if (n < 0)
        return;
    raw[n] = '\0';
    char *colon = strchr((char *)raw, ':');
    if (colon == NULL)
        return;
    *colon = '\0';
    snprintf(r->user, sizeof r->user, "%.127s", (char *)raw);
    snprintf(r->password, sizeof r->password, "%.127s", colon + 1);
}

static void handle(void *arg, const struct fake_http_request *req, struct fake_http_response *res)
{
    struct fake_twilio *t = arg;
    struct fake_twilio_request r;
    memset(&r, 0, sizeof r);
    snprintf(r.method, sizeof r.method, "%s", req->method);
    snprintf(r.path, sizeof r.path, "%s", req->path);
    const char *ct = fake_http_header(req, "Content-Type");
    snprintf(r.content_type, sizeof r.content_type, "%s", ct ? ct : "");
    basic_auth(req, &r);
    fake_form_field(req->body, "To", r.to, sizeof r.to);
    fake_form_field(req->body, "From", r.from, sizeof r.from);
    bool has_body = fake_form_field(req->body, "Body", r.body, sizeof r.body);
    bool has_twiml = fake_form_field(req->body, "Twiml", r.twiml, sizeof r.twiml);
    if (has_twiml)
        r.twiml_ok = parse_twiml(r.twiml, &r);

    char prefix[128];
    snprintf(prefix, sizeof prefix, "/2010-04-01/Accounts/%s/", t->account_sid);
    bool calls = false;
    char msg[512];

    pthread_mutex_lock(&t->lock);
    bool outage = t->outage;
    pthread_mutex_unlock(&t->lock);
    if (outage) {
        error_json(res, 503, 20503, "Service Unavailable");
    } else if (strcmp(r.user, t->account_sid) != 0 || strcmp(r.password, t->auth_token) != 0) {
        error_json(res, 401, 20003, "Authenticate");
    } else if (!has_prefix(r.path, prefix) ||
               (strcmp(r.path + strlen(prefix), "Messages.json") != 0 &&
                !(calls = strcmp(r.path + strlen(prefix), "Calls.json") == 0))) {
        snprintf(msg, sizeof msg, "The requested resource %.200s was not found", r.path);
        error_json(res, 404, 20404, msg);
    } else if (strcmp(r.method, "POST") != 0) {
        error_json(res, 405, 20004, "Method not allowed");
    } else if (!has_prefix(r.content_type, "application/x-www-form-urlencoded")) {
        error_json(res, 400, 20001, "Unsupported content type");
    } else if (r.to[0] == '\0') {
        error_json(res, 400, 21604, "A 'To' phone number is required.");
    } else if (r.from[0] == '\0') {
        error_json(res, 400, 21603, "A 'From' phone number is required.");
    } else if (!calls && !has_body) {
        error_json(res, 400, 21602, "Message body is required.");
    } else if (calls && !has_twiml) {
        error_json(res, 400, 21205, "Url or Twiml parameter is required.");
    } else if (calls && !r.twiml_ok) {
        error_json(res, 400, 12100, "Document parse failure");
    } else if (has_prefix(r.to, "whatsapp:") != has_prefix(r.from, "whatsapp:")) {
        error_json(res, 400, 63007,
                   "Twilio could not find a Channel with the specified From address");
    } else {
        const char *to = has_prefix(r.to, "whatsapp:") ? r.to + 9 : r.to;
        if (strcmp(to, "+15005550001") == 0) {
            snprintf(msg, sizeof msg, "The 'To' number %.60s is not a valid phone number.", r.to);
            error_json(res, 400, 21211, msg);
        } else if (strcmp(to, "+15005550002") == 0) {
            error_json(res, 400, 21612,
                       "The 'To' phone number is not currently reachable using the 'From' phone "
                       "number via SMS.");
        } else if (strcmp(to, "+15005550004") == 0) {
            error_json(res, 400, 21610, "Attempt to send to unsubscribed recipient");
        } else if (strcmp(to, "+15005550009") == 0) {
            error_json(res, 400, 21614, "'To' number is not a valid mobile number");
        } else if (strcmp(to, "+15005550608") == 0) {
            snprintf(msg, sizeof msg,
                     "The number %.40s is unverified. Trial accounts cannot send messages to "
                     "unverified numbers; verify %.40s at twilio.com/user/account/phone-numbers/"
                     "verified, or purchase a Twilio number to send messages to unverified "
                     "numbers.",
                     to, to);
            error_json(res, 400, 21608, msg);
        } else if (strcmp(to, "+15005550429") == 0) {
            error_json(res, 429, 20429, "Too Many Requests");
            snprintf(res->retry_after, sizeof res->retry_after, "7");
        } else if (strcmp(to, "+15005550500") == 0) {
            error_json(res, 500, 20500, "Internal Server Error");
        } else if (strcmp(to, "+15005550503") == 0) {
            res->status = 503;
            snprintf(res->content_type, sizeof res->content_type, "text/html");
            snprintf(res->body, sizeof res->body,
                     "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to "
                     "handle this request.\n</body></html>\n");
        } else if (strcmp(to, "+15005550666") == 0) {
            const char *auth = fake_http_header(req, "Authorization");
            snprintf(msg, sizeof msg, "Proxy refused request with Authorization: %s (token %s)",
                     auth ? auth : "", t->auth_token);
            error_json(res, 400, 21999, msg);
        } else if (strcmp(to, "+15005550777") == 0) {
            res->delay_ms = -1;
            error_json(res, 500, 20500, "too late");
        } else {
            pthread_mutex_lock(&t->lock);
            unsigned n = ++t->next_sid;
            pthread_mutex_unlock(&t->lock);
            res->status = 201;
            snprintf(res->body, sizeof res->body,
                     "{\"account_sid\":\"%s\",\"api_version\":\"2010-04-01\",\"body\":\"...\","
                     "\"direction\":\"outbound-api\",\"error_code\":null,\"error_message\":null,"
                     "\"num_segments\":\"1\",\"price\":null,\"sid\":\"%s%032x\","
                     "\"status\":\"queued\",\"uri\":\"%s%s%032x.json\"}",
                     t->account_sid, calls ? "CA" : "SM", n, prefix,
                     calls ? "Calls/CA" : "Messages/SM", n);
        }
    }
    r.status = res->status;
    pthread_mutex_lock(&t->lock);
    t->requests++;
    t->last = r;
    if (t->n_history < FAKE_TWILIO_HISTORY) {
        struct fake_twilio_seen *h = &t->history[t->n_history];
        h->call = calls;
        snprintf(h->to, sizeof h->to, "%s", r.to);
        const char *text = calls ? r.say : r.body;
        size_t cut = strcspn(text, "|");
        snprintf(h->text, sizeof h->text, "%.*s", (int)cut, text);
        h->status = r.status;
    }
    t->n_history++;
    pthread_mutex_unlock(&t->lock);
}

void fake_twilio_outage(struct fake_twilio *t, bool on)
{
    pthread_mutex_lock(&t->lock);
    t->outage = on;
    pthread_mutex_unlock(&t->lock);
}

int fake_twilio_history(struct fake_twilio *t, struct fake_twilio_seen *out, int cap)
{
    pthread_mutex_lock(&t->lock);
    int n = t->n_history;
    int k = n < FAKE_TWILIO_HISTORY ? n : FAKE_TWILIO_HISTORY;
    for (int i = 0; i < k && i < cap; i++)
        out[i] = t->history[i];
    pthread_mutex_unlock(&t->lock);
    return n;
}

int fake_twilio_count(struct fake_twilio *t, bool call, const char *to)
{
    int count = 0;
    pthread_mutex_lock(&t->lock);
    int k = t->n_history < FAKE_TWILIO_HISTORY ? t->n_history : FAKE_TWILIO_HISTORY;
    for (int i = 0; i < k; i++) {
        const struct fake_twilio_seen *h = &t->history[i];
        size_t lt = to ? strlen(to) : 0, lh = strlen(h->to);
        if (h->status == 201 && h->call == call &&
            (to == NULL || (lh >= lt && strcmp(h->to + lh - lt, to) == 0)))
            count++;
    }
    pthread_mutex_unlock(&t->lock);
    return count;
}

void fake_twilio_start(struct fake_twilio *t, const char *account_sid, const char *auth_token)
{
    memset(t, 0, sizeof *t);
    snprintf(t->account_sid, sizeof t->account_sid, "%s", account_sid);
    snprintf(t->auth_token, sizeof t->auth_token, "%s", auth_token);
    pthread_mutex_init(&t->lock, NULL);
    fake_http_start(&t->http, handle, t);
}

void fake_twilio_stop(struct fake_twilio *t)
{
    fake_http_stop(&t->http);
    pthread_mutex_destroy(&t->lock);
}

int fake_twilio_last(struct fake_twilio *t, struct fake_twilio_request *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->last;
    int n = t->requests;
    pthread_mutex_unlock(&t->lock);
    return n;
}
