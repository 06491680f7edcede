/* mqtt_topic.c — classification of incoming topics; see mqtt_topic.h. */
#include "mqtt/mqtt_topic.h"

#include "core/metric.h"

#include <string.h>

void mqtt_topic_parse(const char *prefix, const char *ha_prefix, const char *topic,
                      size_t max_device_len, struct mqtt_topic *out)
{
    memset(out, 0, sizeof *out);
    out->kind = TOPIC_IGNORED;
    size_t hl = strlen(ha_prefix);
    if (ha_prefix[0] != '\0' && strncmp(topic, ha_prefix, hl) == 0 &&
        strcmp(topic + hl, "/status") == 0) {
        out->kind = TOPIC_HA_STATUS;
        return;
    }
    size_t pl = strlen(prefix);
    if (strncmp(topic, prefix, pl) != 0 || topic[pl] != '/')
        return;
    const char *dev = topic + pl + 1;
    const char *slash = strchr(dev, '/');
    out->kind = TOPIC_INVALID;
    if (slash == NULL) {
        out->error = "the topic has no message type after the device id";
        return;
    }
    out->device = dev;
    out->device_len = (size_t)(slash - dev);
    if (!device_id_valid(dev, out->device_len, max_device_len)) {
        out->error = "the device id in the topic is empty, too long, or has characters other "
                     "than letters, digits, '.', '_', ':' and '-'";
        return;
    }
    const char *rest = slash + 1;
    if (strcmp(rest, "up") == 0)
        out->kind = TOPIC_UP;
    else if (strcmp(rest, "status") == 0)
        out->kind = TOPIC_STATUS;
    else if (strcmp(rest, "cmd/ack") == 0)
        out->kind = TOPIC_CMD_ACK;
    else if (strcmp(rest, "cmd") == 0 || strcmp(rest, "state") == 0)
        out->kind = TOPIC_IGNORED;
    else
        out->error = "unknown message type: expected up, status or cmd/ack";
}
