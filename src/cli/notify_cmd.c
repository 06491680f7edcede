/* notify_cmd.c — `canary notify test`: one test message over one channel, with canaryd's own
 * configuration, so an operator learns whether alerts reach a phone, a mailbox or a webhook
 * receiver before an alert has to.
 *
 * It reads the configuration the way canaryd does (defaults, then the file given by --config
 * or CANARY_CONFIG, then CANARY_<SECTION>_<KEY> environment variables; secrets only from the
 * environment or mode-0600 files), builds the channel settings with notify_config_from() —
 * the same function canaryd's delivery threads use — and sends exactly one message with
 * notify_send(). Nothing is written to the store or the outbox, and nothing is retried.
 *
 * Promises: one result line on stdout (outcome, provider id, HTTP status, provider code,
 * elapsed milliseconds, the error); no secret in anything printed (the notify module scrubs
 * its results, and this file prints no configuration value but addresses); the exit status
 * is 0 when the provider accepted the message, 1 when it did not (retry or permanent
 * failure), 2 on bad usage or a configuration that cannot send over the channel, with a
 * message naming the option or the configuration key. */
#include "cli/commands.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/utf8.h"
#include "decide/alert.h"
#include "notify/channels.h"
#include "notify/explain.h"
#include "notify/notify.h"

#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG               "canary notify test"
#define HOST_CHARS         40     /* of the host name in the message (an SMS has 160) */
#define MESSAGE_MAX        1000   /* bytes of a --message */
#define TIMEOUT_MAX_MS     600000 /* --timeout-ms ceiling */
#define WHATSAPP_PREFIX    "whatsapp:"
#define WHATSAPP_PREFIX_SZ (sizeof WHATSAPP_PREFIX - 1)

static void usage_notify(FILE *out)
{
    fprintf(out, "usage: canary notify test --channel CHANNEL --to ADDRESS [options]\n"
                 "\n"
                 "commands:\n"
                 "  test       send one test message over one channel, with canaryd's settings\n"
                 "\n"
                 "`canary notify test --help` describes its options.\n");
}

static void usage_test(FILE *out)
{
    fprintf(
        out,
        "usage: canary notify test --channel sms|whatsapp|voice|email|webhook --to ADDRESS\n"
        "                          [--config FILE] [--message TEXT] [--timeout-ms N]\n"
        "\n"
        "Sends one test message over one channel with the settings canaryd would use\n"
        "([notify] in its configuration), and prints what the provider answered. Use it\n"
        "after changing the Twilio, SMTP or webhook settings, or to check that a number or\n"
        "an address can be reached, before an alert depends on it. Nothing is stored and\n"
        "nothing is retried.\n"
        "\n"
        "  --channel CHANNEL  sms, whatsapp or voice (Twilio), email (SMTP) or webhook\n"
        "  --to ADDRESS       a phone number in E.164 form (+4915112345678) for sms,\n"
        "                     whatsapp and voice; an e-mail address for email; the\n"
        "                     receiver's http:// or https:// URL for webhook\n"
        "  --config FILE      canaryd's configuration file (default: $CANARY_CONFIG, if\n"
        "                     set); CANARY_<SECTION>_<KEY> environment variables apply on\n"
        "                     top, as for canaryd (CANARY_NOTIFY_TWILIO_AUTH_TOKEN, ...)\n"
        "  --message TEXT     the text to send instead of the standard test message\n"
        "  --timeout-ms N     give up after N milliseconds (default: the channel's, 15000)\n"
        "  -h, --help         this help\n"
        "\n"
        "Settings each channel needs (secrets only from the environment or mode-0600\n"
        "files, e.g. CANARY_NOTIFY_TWILIO_AUTH_TOKEN or notify.twilio_auth_token_file):\n"
        "  sms, voice   notify.twilio_account_sid, notify.twilio_auth_token, notify.twilio_from\n"
        "  whatsapp     notify.twilio_account_sid, notify.twilio_auth_token,\n"
        "               notify.twilio_whatsapp_from\n"
        "  email        notify.smtp_url, notify.smtp_from (notify.smtp_username and\n"
        "               notify.smtp_password when the server wants a login)\n"
        "  webhook      notify.webhook_secret (every request is signed)\n"
        "\n"
        "Output: one line, e.g.\n"
        "  delivered channel=sms to=+4915112345678 provider_id=SM0123... http_status=201\n"
        "  provider_code=0 elapsed_ms=240 error=\"\"\n"
        "Exit status: 0 the provider accepted the message, 1 it did not (retry or\n"
        "permanent_failure: the error says why), 2 bad usage or missing configuration.\n");
}

/* Options of `canary notify test`. */
struct test_options {
    const char *channel;
    const char *to;
    const char *config;
    const char *message;
    unsigned timeout_ms; /* 0 = the channel's */
};

/* "--name VALUE" or "--name=VALUE" at argv[*i]: returns the value (advancing *i past it), or
 * NULL when argv[*i] is not this option. *missing is set when the option has no value. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

/* Parses the options. Returns -1 to go on, else an exit status (help printed: 0; usage
 * error printed: 2). */
static int parse_test_options(int argc, char **argv, struct test_options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool missing = false;
        const char *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_test(stdout);
            return 0;
        } else if ((v = option_value(argc, argv, &i, "--channel", &missing)) != NULL) {
            o->channel = v;
        } else if ((v = option_value(argc, argv, &i, "--to", &missing)) != NULL) {
            o->to = v;
        } else if ((v = option_value(argc, argv, &i, "--config", &missing)) != NULL) {
            o->config = v;
        } else if ((v = option_value(argc, argv, &i, "--message", &missing)) != NULL) {
            o->message = v;
        } else if ((v = option_value(argc, argv, &i, "--timeout-ms", &missing)) != NULL) {
            char *end;
            unsigned long t = strtoul(v, &end, 10);
            if (!isdigit((unsigned char)v[0]) || *end != '\0' || t < 1 || t > TIMEOUT_MAX_MS) {
                fprintf(stderr, "%s: --timeout-ms takes milliseconds from 1 to %d, got '%s'\n",
                        PROG, TIMEOUT_MAX_MS, v);
                return 2;
            }
            o->timeout_ms = (unsigned)t;
        } else if (missing) {
            fprintf(stderr, "%s: %s needs a value (see --help)\n", PROG, a);
            return 2;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n\n", PROG, a);
            usage_test(stderr);
            return 2;
        }
    }
    if (o->channel == NULL) {
        fprintf(stderr, "%s: --channel is required (sms, whatsapp, voice, email or webhook)\n",
                PROG);
        return 2;
    }
    if (o->to == NULL) {
        fprintf(stderr, "%s: --to is required (%s)\n", PROG,
                !strcmp(o->channel, "email")     ? "the e-mail address to send to"
                : !strcmp(o->channel, "webhook") ? "the receiver's URL"
                                                 : "the phone number, E.164: +4915112345678");
        return 2;
    }
    return -1;
}

/* The scheme, host and port of an http(s) URL ("https://hooks.example.com:8443"), or false
 * when it is not one. The path is left out on purpose: webhook paths often carry tokens. */
static bool url_origin(const char *url, char *out, size_t len)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= ' ' || *p == 0x7F)
            return false;
    }
    if (strlen(url) >= NOTIFY_URL_MAX)
        return false;
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    char *scheme = NULL, *host = NULL, *port = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0';
    if (ok && curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
        snprintf(out, len, "%s://%s:%s", scheme, host, port);
    else if (ok)
        snprintf(out, len, "%s://%s", scheme, host);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* Checks --to for the channel; for WhatsApp a "whatsapp:" prefix is accepted (the notify
 * module adds it when missing). Returns true, or prints what is wrong and returns false. */
static bool check_to(enum notify_channel ch, const char *to)
{
    char origin[NOTIFY_URL_MAX];
    switch (ch) {
    case NOTIFY_CHANNEL_SMS:
    case NOTIFY_CHANNEL_WHATSAPP:
    case NOTIFY_CHANNEL_VOICE: {
        const char *number = to;
        if (ch == NOTIFY_CHANNEL_WHATSAPP && !strncmp(number, WHATSAPP_PREFIX, WHATSAPP_PREFIX_SZ))
            number += WHATSAPP_PREFIX_SZ;
        if (config_phone_valid(number))
            return true;
        fprintf(stderr,
                "%s: --to must be a phone number in E.164 form for %s: '+', the country code "
                "and the number, digits only (+4915112345678), got '%.64s'\n",
                PROG, notify_channel_name(ch), to);
        return false;
    }
    case NOTIFY_CHANNEL_EMAIL:
        if (config_email_valid(to))
            return true;
        fprintf(stderr, "%s: --to must be an e-mail address (ops@example.com), got '%.64s'\n", PROG,
                to);
        return false;
    case NOTIFY_CHANNEL_WEBHOOK:
        if (url_origin(to, origin, sizeof origin))
            return true;
        fprintf(stderr,
                "%s: --to must be the webhook receiver's http:// or https:// URL "
                "(https://hooks.example.com/canary), at most %d bytes\n",
                PROG, NOTIFY_URL_MAX - 1);
        return false;
    }
    return false;
}

/* Reads canaryd's configuration: defaults, the file (--config, else $CANARY_CONFIG), the
 * environment; then canaryd's own validation. Returns 0 or prints why not and returns 2. */
static int load_config(struct canary_config *cfg, const char *path)
{
    char err[1024];
    config_init(cfg);
    if (path == NULL)
        path = getenv("CANARY_CONFIG");
    if (path != NULL && path[0] != '\0' && config_load_file(cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s: configuration: %s\n", PROG, err);
        return 2;
    }
    if (config_load_env(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: configuration: %s\n", PROG, err);
        return 2;
    }
    if (config_validate(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: invalid configuration: %s\n", PROG, err);
        return 2;
    }
    return 0;
}

/* Whether the configuration has what the channel needs (what canaryd's config_validate
 * demands of a route that uses the channel; an empty notify.twilio_base_url means Twilio's
 * own). Prints the keys the channel needs and which of them are not set, and returns false,
 * when it does not. */
static bool check_provider(enum notify_channel ch, const struct canary_config *cfg)
{
    struct need {
        const char *key;
        const char *value;
        bool secret;
    };
    const struct need twilio[] = {
        {"notify.twilio_account_sid", cfg->notify.twilio_account_sid, false},
        {"notify.twilio_auth_token", cfg->notify.twilio_auth_token, true},
        {"notify.twilio_from", cfg->notify.twilio_from, false},
    };
    const struct need whatsapp[] = {
        {"notify.twilio_account_sid", cfg->notify.twilio_account_sid, false},
        {"notify.twilio_auth_token", cfg->notify.twilio_auth_token, true},
        {"notify.twilio_whatsapp_from", cfg->notify.twilio_whatsapp_from, false},
    };
    const struct need smtp[] = {
        {"notify.smtp_url", cfg->notify.smtp_url, false},
        {"notify.smtp_from", cfg->notify.smtp_from, false},
    };
    const struct need webhook[] = {
        {"notify.webhook_secret", cfg->notify.webhook_secret, true},
    };
#define NEEDS(list) (needs = (list), n = sizeof(list) / sizeof(list)[0])
    const struct need *needs;
    size_t n;
    switch (ch) {
    case NOTIFY_CHANNEL_WHATSAPP:
        NEEDS(whatsapp);
        break;
    case NOTIFY_CHANNEL_EMAIL:
        NEEDS(smtp);
        break;
    case NOTIFY_CHANNEL_WEBHOOK:
        NEEDS(webhook);
        break;
    default:
        NEEDS(twilio);
        break;
    }
#undef NEEDS
    char all[400] = "", unset[400] = "", hint[200] = "";
    for (size_t i = 0; i < n; i++) {
        size_t la = strlen(all), lu = strlen(unset);
        snprintf(all + la, sizeof all - la, "%s%s",
                 i == 0       ? ""
                 : i + 1 == n ? " and "
                              : ", ",
                 needs[i].key);
        if (needs[i].value[0] != '\0')
            continue;
        snprintf(unset + lu, sizeof unset - lu, "%s%s", lu ? ", " : "", needs[i].key);
        if (needs[i].secret && hint[0] == '\0') {
            char env[96];
            snprintf(env, sizeof env, "CANARY_%s", needs[i].key);
            for (char *p = env; *p; p++)
                *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
            snprintf(hint, sizeof hint,
                     "; %s is a secret: set it with %s, or name a mode-0600 file with %s_file",
                     needs[i].key, env, needs[i].key);
        }
    }
    if (unset[0] == '\0')
        return true;
    fprintf(stderr, "%s: %s needs %s; not set: %s%s\n", PROG, notify_channel_name(ch), all, unset,
            hint);
    return false;
}

/* The host name, cut to HOST_CHARS and reduced to letters, digits and ".-_" (it goes into an
 * SMS, a spoken text and a mail subject); "unknown host" when there is none. */
static void host_name(char *out, size_t len)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || h[0] == '\0')
        snprintf(h, sizeof h, "unknown host");
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)h; *p && n + 1 < len && n < HOST_CHARS;
         p++) {
        out[n++] =
            (char)(isalnum(*p) || *p == '.' || *p == '-' || *p == '_' || *p == ' ' ? *p : '?');
    }
    out[n] = '\0';
}

/* Appends text to buf with the five HTML special characters escaped. */
static void html_escape(char *buf, size_t len, const char *text)
{
    size_t n = strlen(buf);
    for (const char *p = text; *p && n + 7 < len; p++) {
        const char *rep = *p == '<'    ? "&lt;"
                          : *p == '>'  ? "&gt;"
                          : *p == '&'  ? "&amp;"
                          : *p == '"'  ? "&quot;"
                          : *p == '\'' ? "&#39;"
                                       : NULL;
        if (rep != NULL) {
            memcpy(buf + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
}

/* Copies src into dst of cap bytes, cut at a UTF-8 character boundary when it does not fit. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Everything one test message needs, owned here (the message borrows from it). */
struct test_message {
    char host[HOST_CHARS + 1];
    char when[32];
    char text[MESSAGE_MAX + 200];
    char subject[200];
    char text_long[MESSAGE_MAX + 600];
    char html[3 * MESSAGE_MAX + 1200];
    char key[64];
    char *json; /* webhook body (malloc'd) */
};

/* Writes the test message for the channel. Returns 0, or 1 when out of memory. */
static int build_message(struct test_message *t, enum notify_channel ch, const char *custom,
                         int64_t now_ms, struct notify_message *m)
{
    host_name(t->host, sizeof t->host);
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(t->when, sizeof t->when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (custom != NULL)
        snprintf(t->text, sizeof t->text, "%s", custom);
    else
        snprintf(t->text, sizeof t->text,
                 "canary test message from %s at %s: if you can read this, %s alerts reach you.",
                 t->host, t->when, notify_channel_name(ch));
    snprintf(t->subject, sizeof t->subject, "canary test message from %s", t->host);
    snprintf(t->text_long, sizeof t->text_long,
             "%s\n\nSent by `canary notify test` on %s at %s with canaryd's e-mail settings "
             "(notify.smtp_url, notify.smtp_from). No alert is open; nothing needs to be done.\n",
             t->text, t->host, t->when);
    snprintf(t->html, sizeof t->html, "<p>");
    html_escape(t->html, sizeof t->html, t->text);
    size_t n = strlen(t->html);
    snprintf(t->html + n, sizeof t->html - n,
             "</p>\n<p>Sent by <code>canary notify test</code> on %s at %s with canaryd's "
             "e-mail settings. No alert is open; nothing needs to be done.</p>\n",
             t->host, t->when);
    snprintf(t->key, sizeof t->key, "canary-test-%lld-%ld", (long long)now_ms, (long)getpid());

    memset(m, 0, sizeof *m);
    m->channel = ch;
    m->text = t->text;
    m->idempotency_key = t->key;
    if (ch == NOTIFY_CHANNEL_EMAIL) {
        m->subject = t->subject;
        m->text_long = t->text_long;
        m->html = t->html;
    } else if (ch == NOTIFY_CHANNEL_WEBHOOK) {
        /* A receiver sees the shape of a real notification, with type "alert.test" and
         * alert id 0, so it can tell a test from an alert. */
        struct alert a;
        memset(&a, 0, sizeof a);
        snprintf(a.device, sizeof a.device, "canary-test");
        snprintf(a.metric, sizeof a.metric, "%s", ALERT_METRIC_DEVICE);
        a.severity = SEVERITY_INFO;
        a.state = ALERT_STATE_OPEN;
        a.opened_ms = a.updated_ms = now_ms;
        a.value = a.peak = a.limit = NAN;
        copy_cut(a.message, sizeof a.message, t->text);
        struct explanation e;
        memset(&e, 0, sizeof e);
        copy_cut(e.title, sizeof e.title, t->subject);
        copy_cut(e.description, sizeof e.description, t->text);
        copy_cut(e.action, sizeof e.action, "Nothing to do: this is a test.");
        copy_cut(e.short_text, sizeof e.short_text, t->text);
        t->json = notify_webhook_payload(&a, &e, "test", t->key, now_ms);
        if (t->json == NULL) {
            fprintf(stderr, "%s: out of memory\n", PROG);
            return 1;
        }
        m->json = t->json;
    }
    return 0;
}

/* canary notify test: see usage_test(). */
static int notify_test(int argc, char **argv)
{
    struct test_options o;
    int rc = parse_test_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    enum notify_channel ch;
    if (notify_channel_parse(o.channel, &ch) != 0) {
        fprintf(stderr,
                "%s: --channel must be sms, whatsapp, voice, email or webhook, got '%.32s'\n", PROG,
                o.channel);
        return 2;
    }
    if (!check_to(ch, o.to))
        return 2;
    size_t bad;
    if (o.message != NULL && (o.message[0] == '\0' || strlen(o.message) > MESSAGE_MAX ||
                              !utf8_valid(o.message, strlen(o.message), &bad))) {
        fprintf(stderr, "%s: --message takes 1 to %d bytes of UTF-8 text\n", PROG, MESSAGE_MAX);
        return 2;
    }

    struct canary_config cfg;
    if (load_config(&cfg, o.config) != 0) {
        config_free(&cfg);
        return 2;
    }
    bool ready = check_provider(ch, &cfg);
    struct notify_config ncfg;
    notify_config_from(&ncfg, &cfg);
    config_free(&cfg);
    if (!ready)
        return 2;

    char shown[NOTIFY_URL_MAX];
    struct notify_message m;
    if (ch == NOTIFY_CHANNEL_WEBHOOK) {
        snprintf(ncfg.webhook.url, sizeof ncfg.webhook.url, "%s", o.to);
        url_origin(o.to, shown, sizeof shown); /* the path may hold a token: not printed */
    } else {
        snprintf(shown, sizeof shown, "%s", o.to);
    }
    struct test_message *t = calloc(1, sizeof *t);
    if (t == NULL || build_message(t, ch, o.message, clock_wall_ms(), &m) != 0) {
        free(t);
        return 1;
    }
    if (ch != NOTIFY_CHANNEL_WEBHOOK)
        m.to = o.to;

    struct notify_client *client = NULL;
    if (notify_global_init() != 0 || (client = notify_client_new()) == NULL) {
        fprintf(stderr, "%s: libcurl cannot be initialised\n", PROG);
        free(t->json);
        free(t);
        return 1;
    }
    struct notify_result res;
    enum notify_outcome outcome = notify_send(client, &ncfg, &m, o.timeout_ms, &res);
    notify_client_free(client);
    free(t->json);
    free(t);
    explicit_bzero(&ncfg, sizeof ncfg); /* the secrets are not needed any more */

    printf("%s channel=%s to=%s provider_id=%s http_status=%ld provider_code=%ld "
           "elapsed_ms=%lld error=\"%s\"\n",
           notify_outcome_name(outcome), notify_channel_name(ch), shown,
           res.provider_id[0] ? res.provider_id : "-", res.http_status, res.provider_code,
           (long long)res.elapsed_ms, res.error);
    fflush(stdout);
    return outcome == NOTIFY_DELIVERED ? 0 : 1;
}

int cmd_notify(int argc, char **argv)
{
    if (argc < 2) {
        usage_notify(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage_notify(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "test"))
        return notify_test(argc - 1, argv + 1);
    fprintf(stderr, "canary notify: unknown command '%.32s'\n\n", argv[1]);
    usage_notify(stderr);
    return 2;
}
