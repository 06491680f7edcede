/* route.c — turns the configured routes into the targets of one escalation step; see
 * route.h for the contract (pure: configuration, alert and clock in, a plan out). */
#include "notify/route.h"

#include <ctype.h>
#include <fnmatch.h>
#include <string.h>

/* Calls match(item) for each comma-separated, trimmed item of list; true if any matches.
 * An empty list matches everything. */
static bool list_matches(const char *list, const char *subject, bool glob)
{
    const char *p = list;
    bool any_item = false;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *s = p;
        size_t len = n;
        while (len > 0 && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        if (len > 0) {
            char item[CONFIG_STR_MAX];
            any_item = true;
            if (len < sizeof item) {
                memcpy(item, s, len);
                item[len] = '\0';
                if (glob ? fnmatch(item, subject, 0) == 0 : strcmp(item, subject) == 0)
                    return true;
            }
        }
        p += n + (comma ? 1 : 0);
    }
    return !any_item;
}

bool notify_route_matches(const struct config_route *r, const struct alert *a)
{
    if (r->severity_mask != 0 && !(r->severity_mask & (1u << a->severity)))
        return false;
    if (!list_matches(r->kinds, alert_kind_name(a->kind), false))
        return false;
    return list_matches(r->devices, a->device, true);
}

static const char *address_for(const struct config_recipient *r, enum notify_channel ch)
{
    switch (ch) {
    case NOTIFY_CHANNEL_SMS:
        return r->sms;
    case NOTIFY_CHANNEL_WHATSAPP:
        return r->whatsapp;
    case NOTIFY_CHANNEL_VOICE:
        return r->voice;
    case NOTIFY_CHANNEL_WEBHOOK:
        return r->webhook;
    case NOTIFY_CHANNEL_EMAIL:
        return r->email;
    }
    return "";
}

static bool already_planned(const struct notify_plan *p, const char *recipient,
                            enum notify_channel ch)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->targets[i].channel == ch && strcmp(p->targets[i].recipient, recipient) == 0)
            return true;
    }
    return false;
}

/* The recipient's own window wins; "off" (mode 2) means never quiet. */
static bool in_quiet_hours(const struct canary_config *cfg, const struct config_recipient *r,
                           int64_t now_ms)
{
    if (r->quiet.mode != 0)
        return config_quiet_hours_active(&r->quiet, now_ms);
    struct config_quiet_hours global;
    if (cfg->notify.quiet_hours[0] == '\0' ||
        config_quiet_hours_parse(cfg->notify.quiet_hours, &global, NULL, 0) != 0)
        return false;
    return config_quiet_hours_active(&global, now_ms);
}

size_t notify_route_plan(const struct canary_config *cfg, const struct alert *a, unsigned step,
                         int64_t now_ms, struct notify_plan *out)
{
    memset(out, 0, sizeof *out);
    bool critical = a->severity >= SEVERITY_CRITICAL;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (!notify_route_matches(r, a))
            continue;
        out->routes++;
        if (step + 1 < r->n_steps)
            out->more_steps = true;
        if (step >= r->n_steps)
            continue;
        const struct config_route_step *st = &r->steps[step];
        for (unsigned t = 0; t < st->n_targets; t++) {
            const struct config_route_target *tg = &st->targets[t];
            const struct config_recipient *rc = config_recipient_find(cfg, tg->recipient);
            enum notify_channel ch;
            if (rc == NULL || notify_channel_parse(tg->channel, &ch) != 0 ||
                address_for(rc, ch)[0] == '\0') {
                out->unknown++;
                continue;
            }
            if (already_planned(out, rc->name, ch))
                continue;
            if (!critical && in_quiet_hours(cfg, rc, now_ms)) {
                out->quiet++;
                continue;
            }
            if (out->n == NOTIFY_PLAN_MAX) {
                out->dropped++;
                continue;
            }
            out->targets[out->n++] = (struct notify_target){.recipient = rc->name,
                                                            .channel = ch,
                                                            .address = address_for(rc, ch),
                                                            .route = r->name};
        }
    }
    return out->n;
}
