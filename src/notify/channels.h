/* channels.h — the channels' settings (notify.h) from canaryd's configuration ([notify]).
 *
 * One place turns the configuration keys into struct notify_config, so canaryd's delivery
 * threads and `canary notify test` send with exactly the same settings. Pure: no I/O. */
#ifndef CANARY_NOTIFY_CHANNELS_H
#define CANARY_NOTIFY_CHANNELS_H

#include "core/config.h"
#include "notify/notify.h"

/* Fills *out from cfg's [notify] keys (Twilio, SMTP, the webhook secret), on top of the
 * channel defaults (notify_config_init). The webhook URL is per recipient: the caller sets
 * out->webhook.url before each webhook send. */
void notify_config_from(struct notify_config *out, const struct canary_config *cfg);

#endif
