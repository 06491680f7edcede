/* config_notify.c — the alert delivery sections of the configuration: who is told, over
 * which channel, and in which order (config.h, docs/ALERTING.md).
 *
 *   [recipient.alice]
 *   sms = +4915112345678           (E.164: '+', country code, at most 15 digits)
 *   whatsapp = +4915112345678
 *   voice = +4915112345678
 *   email = alice@example.com
 *   webhook = https://hooks.example.com/canary
 *   rate_limit_per_hour = 20       (0 = unlimited)
 *   quiet_hours = 23:00-06:30 +01:00   (or "off"; default notify.quiet_hours)
 *
 *   [route.gas]
 *   severities = >=high            (or "high,critical"; default all)
 *   kinds = gas_leak, fire         (alert kinds; default all)
 *   devices = kitchen-*, boiler-1  (ids or globs; default all)
 *   steps = sms:alice+email:alice, voice:alice, sms:bob
 *
 * Steps are separated by commas: step 0 is sent when the alert opens, step i after i
 * escalation intervals without an acknowledgement; '+' joins targets of one step.
 * Values are parsed when set (errors name the key); relations (a route naming an unknown
 * recipient, a channel whose provider is not configured) are checked by
 * config_validate_notify(). Nothing here sends anything. */
#include "core/config.h"

#include "core/error.h"
#include "decide/alert.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECIPIENTS 256
#define MAX_ROUTES     64

static const char *const channel_names[] = {"sms", "whatsapp", "voice", "webhook", "email"};

/* Copies [p, p+n) into dst without surrounding blanks. Returns false if it does not fit. */
static bool copy_trimmed(char *dst, size_t cap, const char *p, size_t n)
{
    while (n > 0 && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n >= cap)
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

bool config_phone_valid(const char *s)
{
    if (s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++) {
        if (!isdigit((unsigned char)*p))
            return false;
    }
    return n >= 8 && n <= 15;
}

bool config_email_valid(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL || strlen(s) >= CONFIG_STR_MAX)
        return false;
    const char *dot = strrchr(at + 1, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == 0x7F || *p == '<' || *p == '>' || *p == ',' || *p == '"')
            return false;
    }
    return true;
}

bool config_url_valid(const char *s)
{
    const char *host = NULL;
    if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    if (host == NULL || host[0] == '\0' || host[0] == '/')
        return false;
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p))
            return false;
    }
    return true;
}

/* "HH:MM" at p; advances *p. */
static bool parse_hhmm(const char **p, int *minutes)
{
    const char *s = *p;
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return false;
    *minutes = h * 60 + m;
    *p = s + 5;
    return true;
}

int config_quiet_hours_parse(const char *text, struct config_quiet_hours *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (strcmp(p, "off") == 0) {
        out->mode = 2;
        return CANARY_OK;
    }
    int start, end;
    if (!parse_hhmm(&p, &start) || *p++ != '-' || !parse_hhmm(&p, &end))
        goto bad;
    if (start == end) {
        canary_errf(err, errlen, "'%s': the window is empty (start equals end)", text);
        return CANARY_EINVAL;
    }
    while (isspace((unsigned char)*p))
        p++;
    int offset = 0;
    if (strncmp(p, "UTC", 3) == 0)
        p += 3;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int o;
        if (!parse_hhmm(&p, &o) || o > 14 * 60)
            goto bad;
        offset = sign * o;
    }
    if (*p != '\0')
        goto bad;
    out->mode = 1;
    out->start_min = start;
    out->end_min = end;
    out->utc_offset_min = offset;
    return CANARY_OK;
bad:
    canary_errf(
        err, errlen,
        "'%s' is not a quiet-hours window: expected HH:MM-HH:MM with an optional UTC offset "
        "(e.g. 22:00-07:00 +01:00), or off",
        text);
    return CANARY_EINVAL;
}

int config_utc_offset_parse(const char *text, int *minutes)
{
    const char *p = text;
    *minutes = 0;
    while (isspace((unsigned char)*p))
        p++;
    if (strncmp(p, "UTC", 3) == 0)
        p += 3;
    if (*p == '\0')
        return CANARY_OK;
    if (*p != '+' && *p != '-')
        return CANARY_EINVAL;
    int sign = *p == '-' ? -1 : 1;
    p++;
    int o;
    if (!parse_hhmm(&p, &o) || o > 14 * 60 || *p != '\0')
        return CANARY_EINVAL;
    *minutes = sign * o;
    return CANARY_OK;
}

bool config_quiet_hours_active(const struct config_quiet_hours *q, int64_t now_ms)
{
    if (q->mode != 1)
        return false;
    int64_t minutes = now_ms / 60000 + q->utc_offset_min;
    int local = (int)(((minutes % 1440) + 1440) % 1440);
    if (q->start_min < q->end_min)
        return local >= q->start_min && local < q->end_min;
    return local >= q->start_min || local < q->end_min; /* across midnight */
}

const struct config_recipient *config_recipient_find(const struct canary_config *cfg,
                                                     const char *name)
{
    for (size_t i = 0; i < cfg->n_recipients; i++) {
        if (strcmp(cfg->recipients[i].name, name) == 0)
            return &cfg->recipients[i];
    }
    return NULL;
}

static struct config_recipient *recipient_find_or_add(struct canary_config *cfg, const char *name,
                                                      size_t n)
{
    for (size_t i = 0; i < cfg->n_recipients; i++) {
        struct config_recipient *r = &cfg->recipients[i];
        if (strlen(r->name) == n && memcmp(r->name, name, n) == 0)
            return r;
    }
    if (cfg->n_recipients >= MAX_RECIPIENTS)
        return NULL;
    struct config_recipient *grown =
        realloc(cfg->recipients, (cfg->n_recipients + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->recipients = grown;
    struct config_recipient *r = &cfg->recipients[cfg->n_recipients++];
    memset(r, 0, sizeof *r);
    memcpy(r->name, name, n);
    return r;
}

static struct config_route *route_find_or_add(struct canary_config *cfg, const char *name, size_t n)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct config_route *r = &cfg->routes[i];
        if (strlen(r->name) == n && memcmp(r->name, name, n) == 0)
            return r;
    }
    if (cfg->n_routes >= MAX_ROUTES)
        return NULL;
    struct config_route *grown = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->routes = grown;
    struct config_route *r = &cfg->routes[cfg->n_routes++];
    memset(r, 0, sizeof *r);
    memcpy(r->name, name, n);
    return r;
}

static int set_phone(char *dst, size_t cap, const char *key, const char *value, char *err,
                     size_t errlen)
{
    if (value[0] != '\0' && (!config_phone_valid(value) || !config_copy_text(dst, cap, value))) {
        canary_errf(err, errlen,
                    "%s: '%s' is not a phone number in E.164 form ('+', country code and number, "
                    "8 to 15 digits, no spaces: +4915112345678)",
                    key, value);
        return CANARY_EINVAL;
    }
    if (value[0] == '\0')
        dst[0] = '\0';
    return CANARY_OK;
}

static int set_recipient(struct config_recipient *r, const char *key, const char *field,
                         const char *value, char *err, size_t errlen)
{
    if (strcmp(field, "sms") == 0)
        return set_phone(r->sms, sizeof r->sms, key, value, err, errlen);
    if (strcmp(field, "whatsapp") == 0)
        return set_phone(r->whatsapp, sizeof r->whatsapp, key, value, err, errlen);
    if (strcmp(field, "voice") == 0)
        return set_phone(r->voice, sizeof r->voice, key, value, err, errlen);
    if (strcmp(field, "email") == 0) {
        if (value[0] != '\0' &&
            (!config_email_valid(value) || !config_copy_text(r->email, sizeof r->email, value))) {
            canary_errf(err, errlen, "%s: '%s' is not an e-mail address (name@example.com)", key,
                        value);
            return CANARY_EINVAL;
        }
        if (value[0] == '\0')
            r->email[0] = '\0';
        return CANARY_OK;
    }
    if (strcmp(field, "webhook") == 0) {
        if (value[0] != '\0' &&
            (!config_url_valid(value) || !config_copy_text(r->webhook, sizeof r->webhook, value))) {
            canary_errf(err, errlen,
                        "%s: '%s' is not an http:// or https:// URL (at most %d bytes)", key, value,
                        CONFIG_STR_MAX - 1);
            return CANARY_EINVAL;
        }
        if (value[0] == '\0')
            r->webhook[0] = '\0';
        return CANARY_OK;
    }
    if (strcmp(field, "rate_limit_per_hour") == 0) {
        char *end;
        unsigned long v = strtoul(value, &end, 10);
        if (value[0] == '\0' || value[0] == '-' || *end != '\0' || v > 3600) {
            canary_errf(err, errlen, "%s: '%s' is not a whole number from 0 (unlimited) to 3600",
                        key, value);
            return CANARY_EINVAL;
        }
        r->rate_limit_per_hour = (unsigned)v;
        return CANARY_OK;
    }
    if (strcmp(field, "quiet_hours") == 0) {
        char why[300];
        if (value[0] == '\0') {
            memset(&r->quiet, 0, sizeof r->quiet);
            r->quiet_hours_text[0] = '\0';
            return CANARY_OK;
        }
        if (config_quiet_hours_parse(value, &r->quiet, why, sizeof why) != 0 ||
            !config_copy_text(r->quiet_hours_text, sizeof r->quiet_hours_text, value)) {
            canary_errf(err, errlen, "%s: %s", key, why);
            return CANARY_EINVAL;
        }
        return CANARY_OK;
    }
    canary_errf(err, errlen,
                "%s: unknown field '%s' (known: sms, whatsapp, voice, email, webhook, "
                "rate_limit_per_hour, quiet_hours)",
                key, field);
    return CANARY_EINVAL;
}

/* "high,critical" or ">=high" (also "> medium"); "" = every severity. */
static int parse_severities(const char *value, unsigned *mask, const char *key, char *err,
                            size_t errlen)
{
    *mask = 0;
    const char *p = value;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return CANARY_OK;
    if (*p == '>') {
        bool or_equal = p[1] == '=';
        p += or_equal ? 2 : 1;
        char name[32];
        enum alert_severity s;
        if (!copy_trimmed(name, sizeof name, p, strlen(p)) || alert_severity_parse(name, &s) != 0)
            goto bad;
        for (int i = (int)s + (or_equal ? 0 : 1); i < SEVERITY_COUNT; i++)
            *mask |= 1u << i;
        if (*mask == 0)
            goto bad;
        return CANARY_OK;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[32];
        enum alert_severity s;
        if (!copy_trimmed(name, sizeof name, p, n) || alert_severity_parse(name, &s) != 0)
            goto bad;
        *mask |= 1u << s;
        p += n + (comma ? 1 : 0);
    }
    return CANARY_OK;
bad:
    canary_errf(err, errlen,
                "%s: '%s' is not a severity list: names from info, low, medium, high, critical "
                "separated by commas, or >=NAME / >NAME",
                key, value);
    return CANARY_EINVAL;
}

static int check_kinds(const char *value, const char *key, char *err, size_t errlen)
{
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        enum alert_kind k;
        bool fits = copy_trimmed(name, sizeof name, p, n);
        if (!fits || name[0] == '\0' || alert_kind_parse(name, &k) != 0) {
            canary_errf(err, errlen,
                        "%s: '%s' is not an alert kind (e.g. gas_leak, fire, threshold, anomaly, "
                        "rate, sensor_fault, offline)",
                        key, fits ? name : value);
            return CANARY_EINVAL;
        }
        p += n + (comma ? 1 : 0);
    }
    return CANARY_OK;
}

static bool channel_valid(const char *s)
{
    for (size_t i = 0; i < sizeof channel_names / sizeof channel_names[0]; i++) {
        if (strcmp(s, channel_names[i]) == 0)
            return true;
    }
    return false;
}

/* "sms:alice+email:alice, voice:alice, sms:bob" into steps; recipients are checked by
 * config_validate_notify (they may be defined further down the file). */
static int parse_steps(struct config_route *r, const char *value, const char *key, char *err,
                       size_t errlen)
{
    struct config_route_step steps[CONFIG_ROUTE_STEPS_MAX];
    unsigned n_steps = 0;
    memset(steps, 0, sizeof steps);
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n_steps == CONFIG_ROUTE_STEPS_MAX) {
            canary_errf(err, errlen, "%s: more than %d steps", key, CONFIG_ROUTE_STEPS_MAX);
            return CANARY_ELIMIT;
        }
        struct config_route_step *st = &steps[n_steps];
        const char *q = p;
        const char *step_end = p + len;
        while (q <= step_end) {
            const char *plus = memchr(q, '+', (size_t)(step_end - q));
            const char *t_end = plus ? plus : step_end;
            char item[96];
            if (!copy_trimmed(item, sizeof item, q, (size_t)(t_end - q)))
                goto bad;
            char *colon = strchr(item, ':');
            if (colon == NULL)
                goto bad;
            *colon = '\0';
            char channel[16], name[CONFIG_NOTIFY_NAME_MAX];
            if (!copy_trimmed(channel, sizeof channel, item, strlen(item)) ||
                !copy_trimmed(name, sizeof name, colon + 1, strlen(colon + 1)))
                goto bad;
            if (!channel_valid(channel)) {
                canary_errf(
                    err, errlen,
                    "%s: step %u: unknown channel '%s' (known: sms, whatsapp, voice, webhook, "
                    "email)",
                    key, n_steps, channel);
                return CANARY_EINVAL;
            }
            if (!config_name_valid(name, strlen(name), CONFIG_NOTIFY_NAME_MAX))
                goto bad;
            if (st->n_targets == CONFIG_STEP_TARGETS) {
                canary_errf(err, errlen, "%s: step %u: more than %d targets", key, n_steps,
                            CONFIG_STEP_TARGETS);
                return CANARY_ELIMIT;
            }
            struct config_route_target *t = &st->targets[st->n_targets++];
            snprintf(t->channel, sizeof t->channel, "%s", channel);
            snprintf(t->recipient, sizeof t->recipient, "%s", name);
            if (plus == NULL)
                break;
            q = plus + 1;
        }
        n_steps++;
        p += len + (comma ? 1 : 0);
    }
    if (n_steps == 0) {
        canary_errf(err, errlen, "%s: no steps (e.g. steps = sms:alice, voice:alice)", key);
        return CANARY_EINVAL;
    }
    if (!config_copy_text(r->steps_text, sizeof r->steps_text, value)) {
        canary_errf(err, errlen, "%s: longer than %d bytes", key, CONFIG_STR_MAX - 1);
        return CANARY_ELIMIT;
    }
    memcpy(r->steps, steps, sizeof steps);
    r->n_steps = n_steps;
    return CANARY_OK;
bad:
    canary_errf(
        err, errlen,
        "%s: step %u is not CHANNEL:RECIPIENT (joined by '+' within a step, steps separated "
        "by commas: sms:alice+email:alice, voice:alice, sms:bob)",
        key, n_steps);
    return CANARY_EINVAL;
}

static int set_route(struct config_route *r, const char *key, const char *field, const char *value,
                     char *err, size_t errlen)
{
    if (strcmp(field, "severities") == 0) {
        unsigned mask;
        int rc = parse_severities(value, &mask, key, err, errlen);
        if (rc != 0)
            return rc;
        if (!config_copy_text(r->severities, sizeof r->severities, value)) {
            canary_errf(err, errlen, "%s: longer than %zu bytes", key, sizeof r->severities - 1);
            return CANARY_ELIMIT;
        }
        r->severity_mask = mask;
        return CANARY_OK;
    }
    if (strcmp(field, "kinds") == 0) {
        int rc = check_kinds(value, key, err, errlen);
        if (rc == 0 && !config_copy_text(r->kinds, sizeof r->kinds, value)) {
            canary_errf(err, errlen, "%s: longer than %d bytes", key, CONFIG_STR_MAX - 1);
            rc = CANARY_ELIMIT;
        }
        return rc;
    }
    if (strcmp(field, "devices") == 0) {
        if (!config_copy_text(r->devices, sizeof r->devices, value)) {
            canary_errf(err, errlen, "%s: longer than %d bytes", key, CONFIG_STR_MAX - 1);
            return CANARY_ELIMIT;
        }
        return CANARY_OK;
    }
    if (strcmp(field, "steps") == 0)
        return parse_steps(r, value, key, err, errlen);
    canary_errf(err, errlen, "%s: unknown field '%s' (known: severities, kinds, devices, steps)",
                key, field);
    return CANARY_EINVAL;
}

int config_set_notify(struct canary_config *cfg, const char *key, const char *value, char *err,
                      size_t errlen)
{
    bool recipient = strncmp(key, "recipient.", 10) == 0;
    const char *name = key + (recipient ? 10 : 6);
    const char *dot = strrchr(name, '.');
    if (dot == NULL || !config_name_valid(name, (size_t)(dot - name), CONFIG_NOTIFY_NAME_MAX)) {
        canary_errf(err, errlen,
                    "%s: expected %s.<name>.<field>, the name made of letters, digits, '-' and '_' "
                    "(at most %d)",
                    key, recipient ? "recipient" : "route", CONFIG_NOTIFY_NAME_MAX - 1);
        return CANARY_EINVAL;
    }
    size_t n = (size_t)(dot - name);
    if (recipient) {
        struct config_recipient *r = recipient_find_or_add(cfg, name, n);
        if (r == NULL) {
            canary_errf(err, errlen, "%s: at most %d recipients", key, MAX_RECIPIENTS);
            return CANARY_ELIMIT;
        }
        return set_recipient(r, key, dot + 1, value, err, errlen);
    }
    struct config_route *r = route_find_or_add(cfg, name, n);
    if (r == NULL) {
        canary_errf(err, errlen, "%s: at most %d routes", key, MAX_ROUTES);
        return CANARY_ELIMIT;
    }
    return set_route(r, key, dot + 1, value, err, errlen);
}

static const char *recipient_address(const struct config_recipient *r, const char *channel)
{
    if (strcmp(channel, "sms") == 0)
        return r->sms;
    if (strcmp(channel, "whatsapp") == 0)
        return r->whatsapp;
    if (strcmp(channel, "voice") == 0)
        return r->voice;
    if (strcmp(channel, "email") == 0)
        return r->email;
    return r->webhook;
}

/* The provider a channel needs, or NULL when it is configured. */
static const char *missing_provider(const struct canary_config *cfg, const char *channel)
{
    bool twilio = cfg->notify.twilio_account_sid[0] && cfg->notify.twilio_auth_token[0] &&
                  cfg->notify.twilio_base_url[0];
    if (strcmp(channel, "sms") == 0 || strcmp(channel, "voice") == 0)
        return twilio && cfg->notify.twilio_from[0]
                   ? NULL
                   : "notify.twilio_account_sid, notify.twilio_auth_token and notify.twilio_from";
    if (strcmp(channel, "whatsapp") == 0)
        return twilio && cfg->notify.twilio_whatsapp_from[0]
                   ? NULL
                   : "notify.twilio_account_sid, notify.twilio_auth_token and "
                     "notify.twilio_whatsapp_from";
    if (strcmp(channel, "email") == 0)
        return cfg->notify.smtp_url[0] && cfg->notify.smtp_from[0]
                   ? NULL
                   : "notify.smtp_url and notify.smtp_from";
    return cfg->notify.webhook_secret[0] ? NULL : "notify.webhook_secret";
}

int config_validate_notify(const struct canary_config *cfg, char *err, size_t errlen)
{
    struct config_quiet_hours q;
    char why[300];
    if (cfg->notify.quiet_hours[0] != '\0' &&
        (config_quiet_hours_parse(cfg->notify.quiet_hours, &q, why, sizeof why) != 0 ||
         q.mode == 2)) {
        if (q.mode == 2)
            snprintf(why, sizeof why, "'off' is for recipients; leave notify.quiet_hours empty");
        canary_errf(err, errlen, "notify.quiet_hours: %s", why);
        return CANARY_EINVAL;
    }
    const char *const phones[] = {cfg->notify.twilio_from, cfg->notify.twilio_whatsapp_from};
    const char *const phone_keys[] = {"notify.twilio_from", "notify.twilio_whatsapp_from"};
    for (int i = 0; i < 2; i++) {
        if (phones[i][0] != '\0' && !config_phone_valid(phones[i])) {
            canary_errf(err, errlen, "%s: '%s' is not a phone number in E.164 form (+15005550006)",
                        phone_keys[i], phones[i]);
            return CANARY_EINVAL;
        }
    }
    if (cfg->notify.twilio_base_url[0] != '\0' && !config_url_valid(cfg->notify.twilio_base_url)) {
        canary_errf(err, errlen, "notify.twilio_base_url: '%s' is not an http:// or https:// URL",
                    cfg->notify.twilio_base_url);
        return CANARY_EINVAL;
    }
    if (cfg->notify.smtp_url[0] != '\0' && strncmp(cfg->notify.smtp_url, "smtp://", 7) != 0 &&
        strncmp(cfg->notify.smtp_url, "smtps://", 8) != 0) {
        canary_errf(err, errlen, "notify.smtp_url: '%s' is not an smtp:// or smtps:// URL",
                    cfg->notify.smtp_url);
        return CANARY_EINVAL;
    }
    if (cfg->notify.smtp_from[0] != '\0' && !config_email_valid(cfg->notify.smtp_from)) {
        canary_errf(err, errlen, "notify.smtp_from: '%s' is not an e-mail address",
                    cfg->notify.smtp_from);
        return CANARY_EINVAL;
    }
    int offset;
    if (config_utc_offset_parse(cfg->notify.utc_offset, &offset) != 0) {
        canary_errf(err, errlen, "notify.utc_offset: '%s' is not a UTC offset (+01:00, -05:30)",
                    cfg->notify.utc_offset);
        return CANARY_EINVAL;
    }
    if (cfg->notify.retry_min_s > cfg->notify.retry_max_s) {
        canary_errf(err, errlen, "notify.retry_min_s (%u) must not exceed notify.retry_max_s (%u)",
                    cfg->notify.retry_min_s, cfg->notify.retry_max_s);
        return CANARY_EINVAL;
    }
    if (strcmp(cfg->llm.provider, "off") != 0 && cfg->llm.model[0] == '\0') {
        canary_errf(err, errlen, "llm.model must be set when llm.provider is %s",
                    cfg->llm.provider);
        return CANARY_EINVAL;
    }
    if (cfg->llm.url[0] != '\0' && !config_url_valid(cfg->llm.url)) {
        canary_errf(err, errlen, "llm.url: '%s' is not an http:// or https:// URL", cfg->llm.url);
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (r->n_steps == 0) {
            canary_errf(err, errlen, "route.%s: no steps (route.%s.steps = sms:alice, voice:alice)",
                        r->name, r->name);
            return CANARY_EINVAL;
        }
        for (unsigned s = 0; s < r->n_steps; s++) {
            for (unsigned t = 0; t < r->steps[s].n_targets; t++) {
                const struct config_route_target *tg = &r->steps[s].targets[t];
                const struct config_recipient *rc = config_recipient_find(cfg, tg->recipient);
                if (rc == NULL) {
                    canary_errf(err, errlen,
                                "route.%s.steps: step %u names recipient '%s', which has no "
                                "[recipient.%s] section",
                                r->name, s, tg->recipient, tg->recipient);
                    return CANARY_EINVAL;
                }
                if (recipient_address(rc, tg->channel)[0] == '\0') {
                    canary_errf(
                        err, errlen,
                        "route.%s.steps: step %u sends %s to '%s', but recipient.%s.%s is not "
                        "set",
                        r->name, s, tg->channel, tg->recipient, tg->recipient, tg->channel);
                    return CANARY_EINVAL;
                }
                const char *missing = missing_provider(cfg, tg->channel);
                if (missing != NULL) {
                    canary_errf(err, errlen, "route.%s.steps: step %u uses %s, which needs %s",
                                r->name, s, tg->channel, missing);
                    return CANARY_EINVAL;
                }
            }
        }
    }
    return CANARY_OK;
}

void config_write_notify(const struct canary_config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->n_recipients; i++) {
        const struct config_recipient *r = &cfg->recipients[i];
        fprintf(out, "\n[recipient.%s]\n", r->name);
        const char *fields[] = {"sms", "whatsapp", "voice", "email", "webhook"};
        const char *vals[] = {r->sms, r->whatsapp, r->voice, r->email, r->webhook};
        for (int f = 0; f < 5; f++) {
            if (vals[f][0])
                fprintf(out, "%s = %s\n", fields[f], vals[f]);
        }
        if (r->rate_limit_per_hour)
            fprintf(out, "rate_limit_per_hour = %u\n", r->rate_limit_per_hour);
        if (r->quiet_hours_text[0])
            fprintf(out, "quiet_hours = %s\n", r->quiet_hours_text);
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        fprintf(out, "\n[route.%s]\n", r->name);
        if (r->severities[0])
            fprintf(out, "severities = %s\n", r->severities);
        if (r->kinds[0])
            fprintf(out, "kinds = %s\n", r->kinds);
        if (r->devices[0])
            fprintf(out, "devices = %s\n", r->devices);
        if (r->steps_text[0])
            fprintf(out, "steps = %s\n", r->steps_text);
    }
}

int config_copy_notify(struct canary_config *dst, const struct canary_config *src)
{
    dst->recipients = NULL;
    dst->routes = NULL;
    dst->n_recipients = dst->n_routes = 0;
    if (src->n_recipients > 0) {
        dst->recipients = malloc(src->n_recipients * sizeof *dst->recipients);
        if (dst->recipients == NULL)
            return CANARY_ENOMEM;
        memcpy(dst->recipients, src->recipients, src->n_recipients * sizeof *dst->recipients);
        dst->n_recipients = src->n_recipients;
    }
    if (src->n_routes > 0) {
        dst->routes = malloc(src->n_routes * sizeof *dst->routes);
        if (dst->routes == NULL)
            return CANARY_ENOMEM;
        memcpy(dst->routes, src->routes, src->n_routes * sizeof *dst->routes);
        dst->n_routes = src->n_routes;
    }
    return CANARY_OK;
}

void config_free_notify(struct canary_config *cfg)
{
    free(cfg->recipients);
    cfg->recipients = NULL;
    cfg->n_recipients = 0;
    free(cfg->routes);
    cfg->routes = NULL;
    cfg->n_routes = 0;
}
