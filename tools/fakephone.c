/* fakephone.c — canary-fakephone, a pretend phone network for the demo: a loopback server that
 * speaks Twilio's REST API and prints every SMS, WhatsApp message and voice call it "delivers"
 * the way a phone would show it.
 *
 * What it promises:
 *   - It listens on 127.0.0.1 only (never another interface) on --port, 0 meaning a free port,
 *     and says which port: on the first line of stdout and, with --port-file, in that file
 *     (written whole, by rename, so a script polling for it never reads half a number).
 *   - It answers POST /2010-04-01/Accounts/<sid>/Messages.json and .../Calls.json as Twilio
 *     does (https://www.twilio.com/docs/messaging/api/message-resource, .../voice/api/
 *     call-resource): HTTP Basic auth sid:token, a form with To, From and Body (messages) or
 *     Twiml (calls); 201 with a JSON resource whose "sid" is SM... or CA...; every refusal as
 *     Twilio's error object {"code","message","more_info","status"}: 401/20003 bad credentials,
 *     404/20404 another account or resource, 405/20004 not POST, 400/20001 not a form,
 *     21604 no To, 21603 no From, 21602 no Body, 21617 Body over 1600 characters, 21205 no
 *     Twiml, 12100 Twiml without <Response> and <Say>, 63007 "whatsapp:" on one side only.
 *   - Each accepted message or call is printed on stdout as one block (header line with the
 *     recipient, the contact's name from --contact, the time; then the text, word-wrapped, the
 *     call's <Say> texts XML-entity decoded), flushed at once so a pipe or a log sees it.
 *     Refused requests print nothing there; each request gets one log line on stderr unless
 *     --quiet-log.
 *   - SIGINT or SIGTERM stops it cleanly: the server closes, a last line counts what was
 *     delivered, exit status 0. Bad usage exits 2, a port it cannot bind exits 1.
 * It stores nothing and sends nothing anywhere: it is a display, not a relay. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define API_PREFIX     "/2010-04-01/Accounts/"
#define MORE_INFO      "https://www.twilio.com/docs/errors/"
#define REQUEST_MAX    (64 * 1024) /* a form larger than this is refused (413) */
#define BODY_MAX_CHARS 1600        /* Twilio's limit on a message body (error 21617) */
#define CONTACTS_MAX   32
#define WRAP_COLUMNS   76
#define FIELD_MAX      REQUEST_MAX

struct contact {
    const char *number; /* as given, e.g. "+15550100" (not NUL-terminated: number_len) */
    size_t number_len;
    const char *name; /* "operator" */
};

/* Everything the server knows. All requests are handled on MHD's one internal thread (no
 * thread per connection), so the counters and stdout need no lock. */
struct phone {
    const char *account_sid;
    const char *auth_token;
    bool quiet_log;
    struct contact contacts[CONTACTS_MAX];
    int n_contacts;
    unsigned sid_salt; /* makes this run's sids differ from the last run's */
    unsigned n_messages, n_calls, n_refused;
    /* The decoded fields of the request being handled (the server thread's scratch). */
    char to[FIELD_MAX], from[FIELD_MAX], text[FIELD_MAX], says[FIELD_MAX];
};

/* A request's body as it arrives (MHD hands it over in pieces). */
struct upload {
    char *data;
    size_t len, cap;
    bool too_large;
};

/* ---- small text helpers ---- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes standard base64 (RFC 4648 §4) into out, at most cap - 1 bytes, NUL-terminated.
 * Returns the length, or -1 when the input is not base64 or does not fit. */
static int base64_decode(const char *in, char *out, size_t cap)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (size_t k = 0; k < 4; k++) {
            char c = in[i + k];
            const char *p = c ? strchr(alphabet, c) : NULL;
            if (c == '=' && i + 4 == n && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (p == NULL || pad > 0)
                return -1;
            v = (v << 6) | (unsigned)(p - alphabet);
        }
        for (int k = 0; k < 3 - pad; k++) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)((v >> (16 - 8 * k)) & 0xFF);
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* Finds field `name` in an application/x-www-form-urlencoded body and decodes it ('+' is a
 * space, %XX a byte) into out, cut at cap - 1 bytes. Returns false when the field is absent
 * (the first occurrence counts). */
static bool form_field(const char *body, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = body; p != NULL && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < cap; i++) {
                if (p[i] == '+') {
                    out[o++] = ' ';
                } else if (p[i] == '%' && i + 2 < len && hex_value(p[i + 1]) >= 0 &&
                           hex_value(p[i + 2]) >= 0) {
                    out[o++] = (char)(hex_value(p[i + 1]) * 16 + hex_value(p[i + 2]));
                    i += 2;
                } else {
                    out[o++] = p[i];
                }
            }
            out[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* Appends code point cp as UTF-8 to out[*o], keeping room for the NUL. */
static void put_utf8(char *out, size_t cap, size_t *o, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*o + n < cap) {
        memcpy(out + *o, b, n);
        *o += n;
    }
}

/* Decodes XML character data s[0..n) into out: the five predefined entities and numeric
 * references (&#233; &#xE9;). Returns false on an entity XML does not know. */
static bool xml_decode(const char *s, size_t n, char *out, size_t cap)
{
    static const struct {
        const char *name;
        char c;
    } known[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            if (o + 1 < cap)
                out[o++] = s[i];
            i++;
            continue;
        }
        i++;
        bool found = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0] && !found; k++) {
            size_t kl = strlen(known[k].name);
            if (i + kl <= n && strncmp(s + i, known[k].name, kl) == 0) {
                if (o + 1 < cap)
                    out[o++] = known[k].c;
                i += kl;
                found = true;
            }
        }
        if (!found && i < n && s[i] == '#') {
            bool hex = i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X');
            size_t j = i + (hex ? 2 : 1);
            unsigned long cp = 0;
            size_t digits = 0;
            while (j < n && digits < 8 &&
                   (hex ? hex_value(s[j]) >= 0 : s[j] >= '0' && s[j] <= '9')) {
                cp = cp * (hex ? 16 : 10) + (unsigned long)(hex ? hex_value(s[j]) : s[j] - '0');
                j++;
                digits++;
            }
            if (digits == 0 || j >= n || s[j] != ';' || cp == 0 || cp > 0x10FFFF)
                return false;
            put_utf8(out, cap, &o, cp);
            i = j + 1;
            found = true;
        }
        if (!found)
            return false;
    }
    out[o] = '\0';
    return true;
}

/* The decoded text of every <Say> in twiml, each NUL-terminated, one after the other in out
 * (cap bytes). Returns how many, or -1 when the document is not a <Response> holding at least
 * one well-formed <Say> (what Twilio reports as 12100, "Document parse failure"). Lenient about
 * everything else (other verbs, attributes): this is a display, not a validator. */
static int twiml_says(const char *twiml, char *out, size_t cap)
{
    const char *p = twiml;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    if (has_prefix(p, "<?xml")) {
        p = strstr(p, "?>");
        if (p == NULL)
            return -1;
        p += 2;
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
    }
    if (!has_prefix(p, "<Response") || (p[9] != '>' && p[9] != ' ') ||
        strstr(p, "</Response>") == NULL)
        return -1;
    int says = 0;
    size_t used = 0;
    for (const char *s = strstr(p, "<Say"); s != NULL; s = strstr(s, "<Say")) {
        if (s[4] != '>' && s[4] != ' ') {
            s += 4;
            continue;
        }
        const char *open_end = strchr(s, '>');
        if (open_end == NULL || open_end[-1] == '/')
            return -1;
        const char *close = strstr(open_end + 1, "</Say>");
        if (close == NULL)
            return -1;
        const char *text = open_end + 1;
        if (memchr(text, '<', (size_t)(close - text)) != NULL)
            return -1; /* <Say> holds text only (no SSML in what canary sends) */
        if (used + 1 >= cap)
            break;
        if (!xml_decode(text, (size_t)(close - text), out + used, cap - used))
            return -1;
        used += strlen(out + used) + 1;
        says++;
        s = close + 6;
    }
    return says > 0 ? says : -1;
}

/* ---- printing ---- */

static const char *contact_name(const struct phone *ph, const char *number)
{
    if (has_prefix(number, "whatsapp:"))
        number += 9;
    for (int i = 0; i < ph->n_contacts; i++) {
        const struct contact *k = &ph->contacts[i];
        if (strlen(number) == k->number_len && strncmp(k->number, number, k->number_len) == 0)
            return k->name;
    }
    return NULL;
}

static void clock_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, cap, "%H:%M:%S", &tm);
}

/* Writes s[0..n) to stdout with control characters (an ESC that would drive the terminal)
 * shown as '?'. */
static void put_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7F ? '?' : s[i], stdout);
}

/* Prints lead, text and trail word-wrapped at WRAP_COLUMNS (counted in UTF-8 characters, not
 * bytes), each line indented by `indent`. */
static void print_wrapped(const char *indent, const char *lead, const char *text, const char *trail)
{
    fputs(indent, stdout);
    fputs(lead, stdout);
    size_t col = strlen(indent) + strlen(lead);
    const char *p = text;
    bool first_word = true;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *w = p;
        size_t chars = 0;
        while (*p && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            if (((unsigned char)*p & 0xC0) != 0x80)
                chars++;
            p++;
        }
        if (!first_word && col + 1 + chars > WRAP_COLUMNS) {
            fputc('\n', stdout);
            /* Continuation lines sit under the text, not under the lead. */
            printf("%s%*s", indent, (int)strlen(lead), "");
            col = strlen(indent) + strlen(lead);
        } else if (!first_word) {
            fputc(' ', stdout);
            col++;
        }
        put_text(w, (size_t)(p - w));
        col += chars;
        first_word = false;
    }
    fputs(trail, stdout);
    fputc('\n', stdout);
}

static void print_header(const struct phone *ph, const char *icon, const char *what, const char *to,
                         const char *from)
{
    char when[16];
    clock_now(when, sizeof when);
    const char *name = contact_name(ph, to);
    printf("%s %s to ", icon, what);
    put_text(to, strlen(to));
    if (name != NULL)
        printf(" (%s)", name);
    fputs("  from ", stdout);
    put_text(from, strlen(from));
    printf("  %s\n", when);
}

static void print_message(const struct phone *ph, bool whatsapp, const char *to, const char *from,
                          const char *body)
{
    print_header(ph, whatsapp ? "💬" : "📱", whatsapp ? "WhatsApp" : "SMS", to, from);
    print_wrapped("   ", "", body, "");
    fputc('\n', stdout);
    fflush(stdout);
}

static void print_call(const struct phone *ph, const char *to, const char *from, const char *says,
                       int n)
{
    print_header(ph, "📞", "CALL", to, from);
    /* canary speaks its text twice with a pause between: show a repeat once, marked. */
    const char *prev = NULL;
    for (int i = 0; i < n; i++, says += strlen(says) + 1) {
        if (prev != NULL && strcmp(prev, says) == 0) {
            printf("   (says it again)\n");
        } else {
            print_wrapped("   ", "says: \"", says, "\"");
        }
        prev = says;
    }
    fputc('\n', stdout);
    fflush(stdout);
}

/* ---- answers ---- */

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Basic realm=\"Twilio API\"");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* Twilio's error object (https://www.twilio.com/docs/usage/twilios-response). */
static enum MHD_Result send_error(struct phone *ph, struct MHD_Connection *conn, const char *method,
                                  const char *url, unsigned status, int code, const char *message)
{
    ph->n_refused++;
    if (!ph->quiet_log)
        fprintf(stderr, "canary-fakephone: %s %s -> %u, error %d: %s\n", method, url, status, code,
                message);
    cJSON *root = cJSON_CreateObject();
    char more[96];
    snprintf(more, sizeof more, MORE_INFO "%d", code);
    cJSON_AddNumberToObject(root, "code", code);
    cJSON_AddStringToObject(root, "message", message);
    cJSON_AddStringToObject(root, "more_info", more);
    cJSON_AddNumberToObject(root, "status", status);
    return send_json(conn, status, root);
}

static void rfc2822_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* The 201 answer: the created resource, shaped like Twilio's (the fields a client reads). */
static enum MHD_Result send_created(struct phone *ph, struct MHD_Connection *conn, const char *url,
                                    bool call, const char *to, const char *from, const char *body)
{
    unsigned n = call ? ++ph->n_calls : ++ph->n_messages;
    char sid[40], uri[256], date[48];
    snprintf(sid, sizeof sid, "%s%08x%024x", call ? "CA" : "SM", ph->sid_salt, n);
    snprintf(uri, sizeof uri, API_PREFIX "%s/%s/%s.json", ph->account_sid,
             call ? "Calls" : "Messages", sid);
    rfc2822_now(date, sizeof date);
    if (!ph->quiet_log)
        fprintf(stderr, "canary-fakephone: POST %s -> 201 %s\n", url, sid);

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "account_sid", ph->account_sid);
    cJSON_AddStringToObject(root, "api_version", "2010-04-01");
    if (!call) {
        cJSON_AddStringToObject(root, "body", body);
        cJSON_AddStringToObject(root, "num_segments", "1");
        cJSON_AddStringToObject(root, "num_media", "0");
    }
    cJSON_AddStringToObject(root, "date_created", date);
    cJSON_AddStringToObject(root, "date_updated", date);
    cJSON_AddNullToObject(root, call ? "start_time" : "date_sent");
    cJSON_AddStringToObject(root, "direction", "outbound-api");
    cJSON_AddNullToObject(root, "error_code");
    cJSON_AddNullToObject(root, "error_message");
    cJSON_AddStringToObject(root, "from", from);
    cJSON_AddNullToObject(root, "price");
    cJSON_AddStringToObject(root, "price_unit", "USD");
    cJSON_AddStringToObject(root, "sid", sid);
    cJSON_AddStringToObject(root, "status", "queued");
    cJSON_AddStringToObject(root, "to", to);
    cJSON_AddStringToObject(root, "uri", uri);
    return send_json(conn, 201, root);
}

/* Checks a complete request in Twilio's order (credentials, resource, method, form) and
 * answers it; an accepted one is printed. */
static enum MHD_Result handle(struct phone *ph, struct MHD_Connection *conn, const char *url,
                              const char *method, const struct upload *up)
{
    if (up->too_large)
        return send_error(ph, conn, method, url, 413, 20001, "Request body too large");

    char user_pass[512] = "";
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncmp(auth, "Basic ", 6) != 0 ||
        base64_decode(auth + 6, user_pass, sizeof user_pass) < 0)
        user_pass[0] = '\0';
    char *colon = strchr(user_pass, ':');
    if (colon == NULL || (size_t)(colon - user_pass) != strlen(ph->account_sid) ||
        strncmp(user_pass, ph->account_sid, strlen(ph->account_sid)) != 0 ||
        strcmp(colon + 1, ph->auth_token) != 0)
        return send_error(ph, conn, method, url, 401, 20003, "Authenticate");

    char prefix[256];
    snprintf(prefix, sizeof prefix, API_PREFIX "%s/", ph->account_sid);
    const char *resource = has_prefix(url, prefix) ? url + strlen(prefix) : "";
    bool call = strcmp(resource, "Calls.json") == 0;
    if (!call && strcmp(resource, "Messages.json") != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The requested resource %.300s was not found", url);
        return send_error(ph, conn, method, url, 404, 20404, msg);
    }
    if (strcmp(method, "POST") != 0)
        return send_error(ph, conn, method, url, 405, 20004, "Method not allowed");
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL || !has_prefix(ct, "application/x-www-form-urlencoded"))
        return send_error(ph, conn, method, url, 400, 20001, "Unsupported content type");

    const char *form = up->data ? up->data : "";
    char *to = ph->to, *from = ph->from, *text = ph->text, *says = ph->says;
    form_field(form, "To", to, FIELD_MAX);
    form_field(form, "From", from, FIELD_MAX);
    if (to[0] == '\0')
        return send_error(ph, conn, method, url, 400, 21604, "A 'To' phone number is required.");
    if (from[0] == '\0')
        return send_error(ph, conn, method, url, 400, 21603, "A 'From' phone number is required.");
    bool whatsapp = has_prefix(to, "whatsapp:");
    if (whatsapp != has_prefix(from, "whatsapp:"))
        return send_error(ph, conn, method, url, 400, 63007,
                          "Twilio could not find a Channel with the specified From address");
    if (call) {
        if (!form_field(form, "Twiml", text, FIELD_MAX) || text[0] == '\0')
            return send_error(ph, conn, method, url, 400, 21205,
                              "Url or Twiml parameter is required.");
        int n = twiml_says(text, says, FIELD_MAX);
        if (n < 0)
            return send_error(ph, conn, method, url, 400, 12100, "Document parse failure");
        enum MHD_Result rc = send_created(ph, conn, url, true, to, from, NULL);
        print_call(ph, to, from, says, n);
        return rc;
    }
    if (!form_field(form, "Body", text, FIELD_MAX) || text[0] == '\0')
        return send_error(ph, conn, method, url, 400, 21602, "Message body is required.");
    size_t chars = 0;
    for (const char *p = text; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (chars > BODY_MAX_CHARS)
        return send_error(ph, conn, method, url, 400, 21617,
                          "The concatenated message body exceeds the 1600 character limit.");
    enum MHD_Result rc = send_created(ph, conn, url, false, to, from, text);
    print_message(ph, whatsapp, to, from, text);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct phone *ph = cls;
    struct upload *up = *con_cls;
    if (up == NULL) {
        up = calloc(1, sizeof *up);
        if (up == NULL)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_large || up->len + n > REQUEST_MAX) {
            up->too_large = true; /* read the rest, keep none of it, answer 413 */
            return MHD_YES;
        }
        if (up->len + n + 1 > up->cap) {
            size_t cap = up->cap ? up->cap : 4096;
            while (cap < up->len + n + 1)
                cap *= 2;
            char *b = realloc(up->data, cap);
            if (b == NULL)
                return MHD_NO;
            up->data = b;
            up->cap = cap;
        }
        memcpy(up->data + up->len, upload_data, n);
        up->len += n;
        up->data[up->len] = '\0';
        return MHD_YES;
    }
    return handle(ph, conn, url, method, up);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *up = *con_cls;
    if (up != NULL) {
        free(up->data);
        free(up);
        *con_cls = NULL;
    }
}

/* ---- the program ---- */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: canary-fakephone --account-sid SID --auth-token TOKEN [options]\n"
        "\n"
        "A pretend phone network for canary's demo and tests: serves Twilio's REST API\n"
        "(Messages.json for SMS and WhatsApp, Calls.json for voice) on 127.0.0.1 and prints\n"
        "each message and call on stdout the way a phone would show it. Point canaryd at it\n"
        "with notify.twilio_base_url = http://127.0.0.1:PORT and the same SID and token.\n"
        "\n"
        "options:\n"
        "  -p, --port N            port on 127.0.0.1 (default 0: a free one; the first line\n"
        "                          of stdout names it)\n"
        "      --port-file FILE    also write the port to FILE once listening\n"
        "      --account-sid SID   the account in the URL and the Basic-auth user\n"
        "                          (also: FAKEPHONE_ACCOUNT_SID)\n"
        "      --auth-token TOKEN  the Basic-auth password (better: FAKEPHONE_AUTH_TOKEN, which\n"
        "                          other users cannot read in the process list)\n"
        "      --contact NUMBER=NAME\n"
        "                          show NAME beside NUMBER, e.g. +15550100=operator\n"
        "                          (repeatable, up to %d)\n"
        "      --quiet-log         no per-request log lines on stderr\n"
        "  -h, --help              this help\n"
        "\n"
        "Refusals answer as Twilio does (401/20003 wrong credentials, 400/21602 no Body, ...).\n"
        "SIGINT or SIGTERM stops it; exit status 0 then, 1 if the port cannot be bound,\n"
        "2 on bad usage.\n",
        CONTACTS_MAX);
}

/* Writes the port to path through a temporary file and rename(2), so that a reader sees
 * either no file or the whole number. Returns 0, or -1 with errno set. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct phone ph;
    memset(&ph, 0, sizeof ph);
    ph.account_sid = getenv("FAKEPHONE_ACCOUNT_SID");
    ph.auth_token = getenv("FAKEPHONE_AUTH_TOKEN");
    const char *port_file = NULL;
    long port = 0;

    enum { OPT_PORT_FILE = 256, OPT_SID, OPT_TOKEN, OPT_CONTACT, OPT_QUIET };
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"port-file", required_argument, NULL, OPT_PORT_FILE},
                                             {"account-sid", required_argument, NULL, OPT_SID},
                                             {"auth-token", required_argument, NULL, OPT_TOKEN},
                                             {"contact", required_argument, NULL, OPT_CONTACT},
                                             {"quiet-log", no_argument, NULL, OPT_QUIET},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            char *end;
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "canary-fakephone: --port takes 0 to 65535, got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_PORT_FILE:
            port_file = optarg;
            break;
        case OPT_SID:
            ph.account_sid = optarg;
            break;
        case OPT_TOKEN:
            ph.auth_token = optarg;
            break;
        case OPT_CONTACT: {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg || eq[1] == '\0') {
                fprintf(stderr, "canary-fakephone: --contact takes NUMBER=NAME, got '%s'\n",
                        optarg);
                return 2;
            }
            if (ph.n_contacts == CONTACTS_MAX) {
                fprintf(stderr, "canary-fakephone: at most %d --contact\n", CONTACTS_MAX);
                return 2;
            }
            /* Not split in place: ps would show the argument cut at the '='. */
            ph.contacts[ph.n_contacts].number = optarg;
            ph.contacts[ph.n_contacts].number_len = (size_t)(eq - optarg);
            ph.contacts[ph.n_contacts++].name = eq + 1;
            break;
        }
        case OPT_QUIET:
            ph.quiet_log = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "canary-fakephone: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (ph.account_sid == NULL || ph.account_sid[0] == '\0' || ph.auth_token == NULL ||
        ph.auth_token[0] == '\0') {
        fprintf(stderr, "canary-fakephone: needs an account SID and an auth token "
                        "(--account-sid, --auth-token or FAKEPHONE_AUTH_TOKEN); see --help\n");
        return 2;
    }
    for (const char *p = ph.account_sid; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) ||
            p - ph.account_sid >= 64) {
            fprintf(stderr, "canary-fakephone: the account SID must be up to 64 letters and "
                            "digits (like AC0123...)\n");
            return 2;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ph.sid_salt = (unsigned)ts.tv_sec ^ (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16);

    /* The signals are taken by sigwait() below; blocked before the server starts, so its
     * thread inherits the mask and never sees them. A reader that goes away (the demo's
     * display pipe) must not kill the phone: SIGPIPE ignored, write errors dropped. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, on_request, &ph, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "canary-fakephone: cannot listen on 127.0.0.1:%ld (in use?)\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : 0;
    if (bound == 0) {
        fprintf(stderr, "canary-fakephone: cannot tell which port it listens on\n");
        MHD_stop_daemon(d);
        return 1;
    }
    printf("canary-fakephone: listening on http://127.0.0.1:%u (Twilio API, account %s)\n", bound,
           ph.account_sid);
    fflush(stdout);
    if (port_file != NULL && write_port_file(port_file, bound) != 0) {
        fprintf(stderr, "canary-fakephone: cannot write %s: %s\n", port_file, strerror(errno));
        MHD_stop_daemon(d);
        return 1;
    }

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    MHD_stop_daemon(d); /* joins the server thread: no request runs after this */
    printf("canary-fakephone: stopped (%s); delivered %u message%s and %u call%s, refused %u "
           "request%s\n",
           sig == SIGINT ? "SIGINT" : "SIGTERM", ph.n_messages, ph.n_messages == 1 ? "" : "s",
           ph.n_calls, ph.n_calls == 1 ? "" : "s", ph.n_refused, ph.n_refused == 1 ? "" : "s");
    fflush(stdout);
    return 0;
}
