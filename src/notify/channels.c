/* channels.c — struct notify_config from the [notify] configuration keys (channels.h). */
#include "notify/channels.h"

#include <stdio.h>

void notify_config_from(struct notify_config *out, const struct canary_config *cfg)
{
    notify_config_init(out);
    struct notify_twilio_config *tw = &out->twilio;
    if (cfg->notify.twilio_base_url[0] != '\0')
        snprintf(tw->base_url, sizeof tw->base_url, "%s", cfg->notify.twilio_base_url);
    snprintf(tw->account_sid, sizeof tw->account_sid, "%s", cfg->notify.twilio_account_sid);
    snprintf(tw->auth_token, sizeof tw->auth_token, "%s", cfg->notify.twilio_auth_token);
    snprintf(tw->from, sizeof tw->from, "%s", cfg->notify.twilio_from);
    snprintf(tw->whatsapp_from, sizeof tw->whatsapp_from, "%s", cfg->notify.twilio_whatsapp_from);

    struct notify_smtp_config *sm = &out->smtp;
    snprintf(sm->url, sizeof sm->url, "%s", cfg->notify.smtp_url);
    sm->require_starttls = cfg->notify.smtp_starttls;
    snprintf(sm->username, sizeof sm->username, "%s", cfg->notify.smtp_username);
    snprintf(sm->password, sizeof sm->password, "%s", cfg->notify.smtp_password);
    snprintf(sm->from, sizeof sm->from, "%s", cfg->notify.smtp_from);
    snprintf(sm->from_name, sizeof sm->from_name, "canary");

    snprintf(out->webhook.secret, sizeof out->webhook.secret, "%s", cfg->notify.webhook_secret);
}
