/* config.c — the key table, and the file, environment and flag loaders that use it.
 *
 * Adding a key: add a field to struct canary_config and one row to key_table below. The
 * row gives the default, bounds and help; defaults, parsing, environment lookup,
 * validation of bounds, the example file and the docs table all follow from the row. */
#include "core/config.h"

#include "core/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum key_type { KT_STR, KT_UINT, KT_DOUBLE, KT_BOOL, KT_ENUM };

struct key_def {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size;
    const char *def;     /* default, in file syntax */
    double min, max;     /* KT_UINT / KT_DOUBLE bounds */
    const char *choices; /* KT_ENUM: "a|b|c" */
    bool secret;
    const char *help;
};

#define FIELD(f) offsetof(struct canary_config, f), sizeof(((struct canary_config *)0)->f)
#define STR(sec, nm, f, def, help)                                                                 \
    {                                                                                              \
        sec, nm, KT_STR, FIELD(f), def, 0, 0, NULL, false, help                                    \
    }
#define UINT(sec, nm, f, def, lo, hi, help)                                                        \
    {                                                                                              \
        sec, nm, KT_UINT, FIELD(f), def, lo, hi, NULL, false, help                                 \
    }
#define DBL(sec, nm, f, def, lo, hi, help)                                                         \
    {                                                                                              \
        sec, nm, KT_DOUBLE, FIELD(f), def, lo, hi, NULL, false, help                               \
    }
#define BOOL(sec, nm, f, def, help)                                                                \
    {                                                                                              \
        sec, nm, KT_BOOL, FIELD(f), def, 0, 0, NULL, false, help                                   \
    }
#define ENUM(sec, nm, f, def, choices, help)                                                       \
    {                                                                                              \
        sec, nm, KT_ENUM, FIELD(f), def, 0, 0, choices, false, help                                \
    }
#define SECRET(sec, nm, f, help)                                                                   \
    {                                                                                              \
        sec, nm, KT_STR, FIELD(f), "", 0, 0, NULL, true, help                                      \
    }

#define SEVERITIES "info|low|medium|high|critical"

static const struct key_def key_table[] = {
    STR("http", "listen", http.listen, "127.0.0.1:8080",
        "Address and port of the HTTP server (ingest, REST API). Port 0 picks a free port."),
    UINT("http", "threads", http.threads, "0", 0, 256, "HTTP threads; 0 means one per core."),
    UINT("http", "max_body_bytes", http.max_body_bytes, "4194304", 1024, 1073741824,
         "Largest accepted request body; larger bodies get 413."),
    UINT("http", "max_connections", http.max_connections, "1024", 1, 65536,
         "Simultaneous connections; further ones are refused."),
    UINT("http", "max_connections_per_ip", http.max_connections_per_ip, "256", 1, 65536,
         "Simultaneous connections from one client address."),
    UINT("http", "idle_timeout_s", http.idle_timeout_s, "30", 1, 86400,
         "Close a connection that sends nothing at all for this long."),
    UINT("http", "header_timeout_s", http.header_timeout_s, "10", 1, 3600,
         "A request's headers must be complete within this time after the connection opens "
         "or its previous request ends. Cuts off clients that trickle bytes (slow loris) and "
         "bounds how long an idle keep-alive connection stays open."),
    UINT("http", "request_timeout_s", http.request_timeout_s, "30", 1, 3600,
         "A request's body must arrive within this time after its headers."),
    BOOL("http", "request_log", http.request_log, "false", "Write one log line per request."),
    STR("http", "tls_cert", http.tls_cert, "",
        "PEM certificate file (the server's first, then any intermediates). When set, the "
        "API, dashboard and ingest are served over HTTPS only (TLS 1.2 and 1.3). `canary cert` "
        "makes a self-signed pair (docs/HARDENING.md)."),
    STR("http", "tls_key", http.tls_key, "",
        "PEM private key of http.tls_cert (keep it mode 0600)."),
    SECRET("http", "tls_key_password", http.tls_key_password,
           "Secret. Password of an encrypted http.tls_key. Set via CANARY_HTTP_TLS_KEY_PASSWORD "
           "or http.tls_key_password_file (mode 0600)."),

    DBL("limits", "http_rate", limits.http_rate, "2000", 0, 1000000,
        "Requests per second one client address may make (an IPv6 address counts by its /64); "
        "beyond the burst they get 429 with Retry-After, before any other work. 0: no limit. "
        "A fleet behind one NAT address counts as one client."),
    DBL("limits", "http_burst", limits.http_burst, "4000", 1, 10000000,
        "Requests one client address may make at once above limits.http_rate."),
    BOOL("limits", "http_exempt_loopback", limits.http_exempt_loopback, "true",
         "Requests from 127.0.0.0/8 and ::1 are not limited (the host itself; a reverse proxy "
         "on the host must then limit on its side)."),
    UINT("limits", "http_table", limits.http_table, "65536", 64, 16777216,
         "Client addresses tracked (24 bytes each, allocated at start). When full, the address "
         "seen least recently in its set is forgotten: a flood of addresses cannot grow memory."),
    DBL("limits", "device_rate", limits.device_rate, "100", 0, 1000000,
        "Readings per second one device may send, over HTTP and MQTT together, counted after "
        "its signature or token is verified (forged messages cost the device nothing). Over "
        "the limit: HTTP 429 with Retry-After, MQTT messages dropped and recorded as a "
        "rate_limited security event. 0: no limit."),
    DBL("limits", "device_burst", limits.device_burst, "100000", 1, 100000000,
        "Readings one device may send at once above limits.device_rate: room for a backlog "
        "(what the broker kept for canaryd while it was down, what a device buffered while "
        "offline: a day at one reading a second). A single batch of one device larger than "
        "this never passes."),
    UINT("limits", "device_table", limits.device_table, "131072", 64, 16777216,
         "Devices tracked by the per-device limit (24 bytes each, allocated at start)."),

    UINT("ingest", "max_batch", ingest.max_batch, "10000", 1, 1000000,
         "Readings in one request; more gets 413."),
    UINT("ingest", "max_metrics", ingest.max_metrics, "32", 1, READING_MAX_VALUES,
         "Values in one reading; more gets 400."),
    UINT("ingest", "max_device_len", ingest.max_device_len, "64", 1, READING_MAX_ID_LEN,
         "Bytes in a device id."),
    UINT("ingest", "max_metric_len", ingest.max_metric_len, "64", 1, READING_MAX_METRIC_LEN,
         "Bytes in a metric name."),
    UINT("ingest", "max_past_s", ingest.max_past_s, "604800", 0, 315360000,
         "Oldest accepted timestamp, in seconds before the server's clock (devices that "
         "buffered readings while offline send old ones)."),
    UINT("ingest", "max_future_s", ingest.max_future_s, "300", 0, 86400,
         "Newest accepted timestamp, in seconds after the server's clock."),
    BOOL("ingest", "strict_fields", ingest.strict_fields, "true",
         "Reject readings with fields other than device, seq, ts and values."),
    BOOL("ingest", "auto_register", ingest.auto_register, "true",
         "A device appears on its first valid reading; when false, readings from devices not "
         "created through the API are rejected."),
    UINT("ingest", "max_inflight", ingest.max_inflight, "200000", 100, 100000000,
         "Readings accepted but not yet stored; beyond this, ingest answers 503 with "
         "Retry-After instead of buffering."),
    UINT("ingest", "seq_window", ingest.seq_window, "64", 0, 64,
         "Out-of-order tolerance: a seq up to this far below the device's highest is "
         "accepted once if not seen before."),

    UINT("pipeline", "workers", pipeline.workers, "0", 0, 256,
         "Detection workers, each owning a share of the devices; 0 means one per core."),

    STR("store", "path", store.path, "./var/canary.db",
        "SQLite database file; its directory is created if missing."),
    ENUM("store", "synchronous", store.synchronous, "full", "full|normal",
         "full: a stored reading survives power loss; normal: it survives a crash of canaryd "
         "but the last commits may be lost on power loss."),
    UINT("store", "commit_max_readings", store.commit_max_readings, "20000", 1, 1000000,
         "Readings in one group commit."),
    UINT("store", "compact_interval_ms", store.compact_interval_ms, "2000", 10, 3600000,
         "How often the append log is compacted into per-device chunks."),
    UINT("store", "chunk_max_readings", store.chunk_max_readings, "512", 8, 65536,
         "Readings in one stored chunk."),
    UINT("store", "chunk_max_span_s", store.chunk_max_span_s, "3600", 1, 86400,
         "Time one chunk may span."),
    UINT("store", "busy_timeout_ms", store.busy_timeout_ms, "5000", 0, 600000,
         "How long a database call waits for a lock."),
    UINT("store", "retention_readings_days", store.retention_readings_days, "90", 0, 36500,
         "Delete readings older than this; 0 keeps them forever."),
    UINT("store", "retention_alerts_days", store.retention_alerts_days, "365", 0, 36500,
         "Delete resolved alerts older than this; 0 keeps them forever."),
    UINT("store", "retention_audit_days", store.retention_audit_days, "730", 0, 36500,
         "Delete audit log rows older than this; 0 keeps them forever."),

    UINT("devices", "stale_after_s", devices.stale_after_s, "60", 1, 31536000,
         "A device with no reading for this long is stale."),
    UINT("devices", "offline_after_s", devices.offline_after_s, "300", 1, 31536000,
         "A device with no reading for this long is offline (and an offline alert opens)."),
    UINT("devices", "max_devices", devices.max_devices, "100000", 1, 10000000,
         "Devices canaryd tracks; readings from further new devices are refused (a flood of "
         "invented device ids cannot exhaust memory)."),
    UINT("devices", "max_metrics", devices.max_metrics, "64", 1, READING_MAX_VALUES,
         "Distinct metrics one device may report over its life."),

    UINT("detect", "warmup_readings", detect.warmup_readings, "30", 2, 100000,
         "Readings a series needs before its anomaly score counts."),
    DBL("detect", "level_alpha", detect.level_alpha, "0.005", 0.0001, 1,
        "Weight of a new reading in the series' level (EWMA; 0.005: about the last 200)."),
    DBL("detect", "scale_alpha", detect.scale_alpha, "0.002", 0.0001, 1,
        "Weight of a new deviation in the series' scale (EWMA of absolute deviations; "
        "0.002: about the last 500)."),
    DBL("detect", "anomaly_threshold", detect.anomaly_threshold, "0.5", 0.01, 1,
        "Anomaly score at or above which a value is flagged anomalous (0.5: the recent raw "
        "scores have a tail probability of 1e-5 under their long-run distribution)."),
    DBL("detect", "z_half", detect.z_half, "6", 0.5, 100,
        "Robust z-score (deviation / scale) that maps to raw score 0.5."),
    DBL("detect", "min_relative_scale", detect.min_relative_scale, "0.01", 0, 1,
        "The scale never falls below this fraction of the level: changes within sensor "
        "accuracy (about 1% of reading) are not anomalies."),
    UINT("detect", "rate_window_s", detect.rate_window_s, "60", 1, 86400,
         "Window over which the rate of change is measured."),
    DBL("detect", "gap_factor", detect.gap_factor, "5", 1.5, 1000,
        "A reading after more than gap_factor times the device's usual interval ..."),
    UINT("detect", "gap_min_s", detect.gap_min_s, "30", 1, 86400,
         "... and more than gap_min_s seconds is flagged as following a gap."),

    UINT("alerts", "open_after", alerts.open_after, "3", 1, 10000,
         "Consecutive readings with a condition before a non-critical alert opens (critical "
         "ones open at once)."),
    UINT("alerts", "resolve_after_s", alerts.resolve_after_s, "60", 0, 86400,
         "An alert resolves itself when its condition has been clear this long."),
    UINT("alerts", "reopen_window_s", alerts.reopen_window_s, "300", 0, 86400,
         "A condition that returns within this time after resolving re-opens the same alert."),
    ENUM("alerts", "anomaly_severity", alerts.anomaly_severity, "low", SEVERITIES,
         "Severity of alerts raised by the streaming anomaly detector."),
    UINT("models", "consecutive", models.consecutive, "3", 1, 1000,
         "Readings in a row a model must score at or above its threshold before its anomaly "
         "alert opens (per model: model.<name>.consecutive)."),
    ENUM("alerts", "offline_severity", alerts.offline_severity, "medium", "off|" SEVERITIES,
         "Severity of the alert when a device goes offline; off raises none."),
    ENUM("alerts", "gas_offline_severity", alerts.gas_offline_severity, "high", "off|" SEVERITIES,
         "Severity of the alert raised at once when a device with a gas sensor drops off MQTT "
         "unexpectedly (the broker publishes its last will); off leaves it to offline_after_s."),

    STR("actions", "gas_leak", actions.gas_leak, "critical: buzzer=on, valve=close",
        "Commands sent to the device over MQTT when a gas_leak alert of at least the given "
        "severity opens: 'SEVERITY: command=state, ...' (buzzer=on|off, valve=open|close, "
        "relay=on|off, interval_s=N); empty sends none."),
    STR("actions", "fire", actions.fire, "critical: buzzer=on, valve=close",
        "Commands sent when a fire alert opens (closing the gas valve is the usual fire "
        "interlock)."),
    STR("actions", "threshold", actions.threshold, "",
        "Commands sent when a threshold alert opens."),
    STR("actions", "anomaly", actions.anomaly, "", "Commands sent when an anomaly alert opens."),
    STR("actions", "rate", actions.rate, "", "Commands sent when a rate alert opens."),
    STR("actions", "sensor_fault", actions.sensor_fault, "",
        "Commands sent when a sensor_fault alert opens."),
    STR("actions", "offline", actions.offline, "", "Commands sent when an offline alert opens."),

    BOOL("mqtt", "enabled", mqtt.enabled, "false",
         "Connect to an MQTT broker and ingest readings from <topic_prefix>/<device>/up."),
    STR("mqtt", "host", mqtt.host, "127.0.0.1", "Broker host name or address."),
    UINT("mqtt", "port", mqtt.port, "1883", 1, 65535, "Broker port (8883 is usual with TLS)."),
    STR("mqtt", "client_id", mqtt.client_id, "canaryd",
        "canaryd's client id. Its persistent session keeps readings sent while canaryd was "
        "down; two canaryd must not share one."),
    STR("mqtt", "username", mqtt.username, "", "User name at the broker; empty: anonymous."),
    SECRET("mqtt", "password", mqtt.password,
           "Secret. Password at the broker. Set via CANARY_MQTT_PASSWORD or mqtt.password_file "
           "(mode 0600)."),
    ENUM("mqtt", "protocol", mqtt.protocol, "5", "5|3.1.1", "MQTT protocol version."),
    UINT("mqtt", "keepalive_s", mqtt.keepalive_s, "30", 5, 3600,
         "Keep-alive: a dead connection is noticed within 1.5 times this."),
    UINT("mqtt", "session_expiry_s", mqtt.session_expiry_s, "604800", 0, 31536000,
         "MQTT 5: how long the broker keeps canaryd's session (and queues its QoS 1 messages) "
         "while canaryd is away. MQTT 3.1.1 sessions never expire."),
    STR("mqtt", "tls_ca", mqtt.tls_ca, "",
        "CA certificate file; when set, the connection to the broker uses TLS and checks "
        "the broker's certificate and host name."),
    STR("mqtt", "tls_cert", mqtt.tls_cert, "", "Client certificate file (TLS client auth)."),
    STR("mqtt", "tls_key", mqtt.tls_key, "", "Client key file (TLS client auth)."),
    STR("mqtt", "topic_prefix", mqtt.topic_prefix, "canary",
        "First topic level: readings on <prefix>/<device>/up, status on <prefix>/<device>/status, "
        "commands on <prefix>/<device>/cmd."),
    UINT("mqtt", "qos", mqtt.qos, "1", 0, 1,
         "QoS of the readings subscription. 1: nothing acknowledged is lost."),
    STR("mqtt", "journal", mqtt.journal, "",
        "Crash-safe journal of received messages, replayed at start; empty: <store.path>.mqtt."),
    UINT("mqtt", "max_payload", mqtt.max_payload, "65536", 64, 16777216,
         "Largest accepted message; larger ones are refused and recorded."),
    UINT("mqtt", "batch_max", mqtt.batch_max, "4096", 1, 100000,
         "Messages handed to the pipeline as one job."),
    UINT("mqtt", "batch_wait_ms", mqtt.batch_wait_ms, "2", 0, 1000,
         "Longest a received message waits to fill a job."),
    UINT("mqtt", "reconnect_min_ms", mqtt.reconnect_min_ms, "250", 10, 600000,
         "First reconnect delay after the broker goes away; doubles per failure, with jitter."),
    UINT("mqtt", "reconnect_max_ms", mqtt.reconnect_max_ms, "30000", 10, 3600000,
         "Longest reconnect delay."),
    UINT("mqtt", "receive_maximum", mqtt.receive_maximum, "1000", 1, 65535,
         "MQTT 5: QoS 1 messages the broker may have in flight to canaryd (3.1.1 brokers use "
         "their own max_inflight_messages)."),
    UINT("mqtt", "command_timeout_s", mqtt.command_timeout_s, "30", 1, 86400,
         "A command the device has not acknowledged within this time is timed_out."),
    BOOL("mqtt", "ha_discovery", mqtt.ha_discovery, "false",
         "Publish Home Assistant MQTT discovery configs and device states (docs/MQTT.md)."),
    STR("mqtt", "ha_prefix", mqtt.ha_prefix, "homeassistant", "Home Assistant discovery prefix."),
    UINT("mqtt", "ha_state_interval_s", mqtt.ha_state_interval_s, "5", 0, 3600,
         "At most one state update per device in this time (alert changes go out at once)."),

    ENUM("log", "level", log.level, "info", "debug|info|warn|error", "Lowest level logged."),

    SECRET("api", "admin_token", api.admin_token,
           "Secret. When set, state-changing API calls (acknowledge, resolve, comment, device "
           "changes) need 'Authorization: Bearer <token>'. Set via CANARY_API_ADMIN_TOKEN or "
           "api.admin_token_file (mode 0600)."),
    BOOL("api", "require_auth", api.require_auth, "false",
         "Every /api/v1 call (but ingest, login and /healthz) needs a credential even before "
         "the first user exists; access control is on anyway once a user exists "
         "(docs/ACCESS.md)."),
    UINT("api", "session_ttl_s", api.session_ttl_s, "43200", 1, 2592000,
         "A dashboard session ends this long after its login."),
    UINT("api", "session_idle_s", api.session_idle_s, "1800", 1, 2592000,
         "A dashboard session ends after this long without a request."),
    BOOL("api", "cookie_secure", api.cookie_secure, "false",
         "Mark the session cookie Secure even when canaryd speaks plain HTTP (behind an HTTPS "
         "proxy); with http.tls_cert it is Secure anyway."),
    UINT("api", "login_max_failures", api.login_max_failures, "5", 1, 1000,
         "Failed logins of one user name within api.login_window_s that lock it out "
         "(4 times as many from one address)."),
    UINT("api", "login_window_s", api.login_window_s, "300", 1, 86400,
         "Failed logins older than this are forgotten."),
    UINT("api", "login_lockout_s", api.login_lockout_s, "30", 1, 86400,
         "The first lockout after too many failed logins; each further one doubles it."),
    UINT("api", "login_lockout_max_s", api.login_lockout_max_s, "3600", 1, 604800,
         "The longest lockout."),

    STR("notify", "twilio_base_url", notify.twilio_base_url, "https://api.twilio.com",
        "Twilio REST API base URL (tests point it at a local fake)."),
    STR("notify", "twilio_account_sid", notify.twilio_account_sid, "",
        "Twilio account SID (AC...); needed by routes that use sms, whatsapp or voice."),
    SECRET("notify", "twilio_auth_token", notify.twilio_auth_token,
           "Secret. Twilio auth token. Set via CANARY_NOTIFY_TWILIO_AUTH_TOKEN or "
           "notify.twilio_auth_token_file (mode 0600)."),
    STR("notify", "twilio_from", notify.twilio_from, "",
        "Twilio phone number (E.164, e.g. +15005550006) that sends SMS and places calls."),
    STR("notify", "twilio_whatsapp_from", notify.twilio_whatsapp_from, "",
        "Twilio WhatsApp sender (E.164); needed by routes that use whatsapp."),
    STR("notify", "smtp_url", notify.smtp_url, "",
        "SMTP server for e-mail: smtp://host:587 (with STARTTLS) or smtps://host:465."),
    STR("notify", "smtp_username", notify.smtp_username, "", "SMTP user name; empty: no login."),
    SECRET("notify", "smtp_password", notify.smtp_password,
           "Secret. SMTP password. Set via CANARY_NOTIFY_SMTP_PASSWORD or "
           "notify.smtp_password_file (mode 0600)."),
    STR("notify", "smtp_from", notify.smtp_from, "",
        "Sender address of alert e-mails; needed by routes that use email."),
    BOOL("notify", "smtp_starttls", notify.smtp_starttls, "true",
         "Require STARTTLS on smtp:// (the message is never sent in the clear)."),
    SECRET("notify", "webhook_secret", notify.webhook_secret,
           "Secret. Key of the HMAC-SHA256 signature on webhook requests; needed by routes "
           "that use webhook. Set via CANARY_NOTIFY_WEBHOOK_SECRET or "
           "notify.webhook_secret_file (mode 0600)."),
    STR("notify", "quiet_hours", notify.quiet_hours, "",
        "Daily window in which only critical alerts are delivered, e.g. '22:00-07:00 +01:00' "
        "(HH:MM-HH:MM, optional UTC offset; without one: UTC). Per recipient: "
        "recipient.<name>.quiet_hours. Empty: none."),
    DBL("notify", "escalate_after_min", notify.escalate_after_min, "10", 0.05, 1440,
        "An alert of at least notify.escalate_severity not acknowledged within this many "
        "minutes escalates to the next step of its route (fractions allowed: 0.5 = 30 s)."),
    ENUM("notify", "escalate_severity", notify.escalate_severity, "critical", SEVERITIES,
         "Lowest severity whose unacknowledged alerts escalate."),
    UINT("notify", "workers", notify.workers, "3", 0, 32,
         "Delivery threads (each sends one notification at a time; a slow provider holds "
         "only its own thread). 0 keeps notifications in the outbox unsent."),
    UINT("notify", "max_attempts", notify.max_attempts, "12", 1, 1000,
         "Attempts before a notification that keeps failing temporarily is marked failed."),
    UINT("notify", "retry_min_s", notify.retry_min_s, "5", 1, 86400,
         "Delay before the first retry; each further retry doubles it, with jitter."),
    UINT("notify", "retry_max_s", notify.retry_max_s, "600", 1, 86400,
         "Longest delay between retries."),
    STR("notify", "utc_offset", notify.utc_offset, "",
        "Offset of the times written in messages, e.g. '+01:00'; empty: UTC."),

    ENUM("llm", "provider", llm.provider, "off", "off|openai|gemini",
         "Who writes alert texts besides the templates: off (templates only), openai (any "
         "OpenAI-compatible chat-completions server, e.g. a local llama.cpp) or gemini "
         "(Google's generateContent API). The template stands whenever the LLM fails."),
    STR("llm", "url", llm.url, "",
        "API base URL; empty: https://api.openai.com/v1 (openai) or "
        "https://generativelanguage.googleapis.com/v1beta (gemini)."),
    STR("llm", "model", llm.model, "", "Model name, e.g. gpt-4o-mini or gemini-1.5-flash."),
    SECRET("llm", "api_key", llm.api_key,
           "Secret. API key (empty for a local server without one). Set via "
           "CANARY_LLM_API_KEY or llm.api_key_file (mode 0600)."),
    UINT("llm", "timeout_ms", llm.timeout_ms, "4000", 100, 60000,
         "The whole LLM request; beyond it the template text is used."),

    ENUM("security", "unsigned", security.unsigned_policy, "reject", "accept|flag|reject",
         "Readings of devices that have no key or token: reject (401, the default), flag "
         "(accept, mark them 'unsigned' and record a security event) or accept. A device with a "
         "key must always sign. The demo sets accept for its unsigned simulated fleet "
         "(docs/SECURITY.md)."),
    SECRET("security", "master_key", security.master_key,
           "Secret. 32 bytes (64 hex digits or base64url) that encrypt device keys at rest "
           "(AES-256-GCM); without it no device key can be created or used. Set via "
           "CANARY_SECURITY_MASTER_KEY (or CANARY_MASTER_KEY) or security.master_key_file "
           "(mode 0600)."),
    UINT("security", "key_overlap_s", security.key_overlap_s, "86400", 0, 31536000,
         "After `canary device rotate-key`, the old key stays valid this long."),
};

#define N_KEYS (sizeof key_table / sizeof key_table[0])

static const char *const limit_field_names[LIMIT_FIELD_COUNT] = {
    "warn_high",  "crit_high",        "warn_low",      "crit_low",
    "hysteresis", "max_rate_per_min", "flatline_count"};

/* One MQTT topic level without wildcards or separators. */
static bool topic_level_valid(const char *s)
{
    if (s[0] == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static const struct key_def *find_key(const char *section, size_t seclen, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &key_table[i];
        if (strlen(k->section) == seclen && strncmp(k->section, section, seclen) == 0 &&
            strcmp(k->name, name) == 0)
            return k;
    }
    return NULL;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
        return false;
    *out = d;
    return true;
}

static bool enum_allows(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* Reads a secret from a file that only its owner may read. Trailing newlines are dropped. */
static int read_secret_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        canary_errf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    if (st.st_mode & 077) {
        canary_errf(err, errlen,
                    "secret file %s must not be readable by group or others (chmod 600)", path);
        return CANARY_EPERM;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        canary_errf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    /* Read a little more than fits: the line end an editor or `echo` adds does not count. */
    char buf[CONFIG_STR_MAX + 4];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (more || n >= outlen) {
        memset(buf, 0, sizeof buf);
        canary_errf(err, errlen, "secret file %s is longer than %zu bytes", path, outlen - 1);
        return CANARY_ELIMIT;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    memset(buf, 0, sizeof buf);
    return CANARY_OK;
}

static void env_name(const struct key_def *k, const char *suffix, char *out, size_t len)
{
    snprintf(out, len, "CANARY_%s_%s%s", k->section, k->name, suffix);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static int set_fixed(struct canary_config *cfg, const struct key_def *k, const char *value,
                     enum config_source src, bool from_file_key, char *err, size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    if (k->secret && strcmp(value, "<set>") == 0) {
        canary_errf(
            err, errlen,
            "%s.%s: \"<set>\" is what --print-config shows in place of a secret, not a secret",
            k->section, k->name);
        return CANARY_EINVAL;
    }
    /* An empty value unsets a secret and reveals nothing, wherever it comes from. */
    if (k->secret && value[0] != '\0' && !from_file_key &&
        (src == CONFIG_SRC_FLAG || src == CONFIG_SRC_FILE_SHARED)) {

        char env[128];
        env_name(k, "", env, sizeof env);
        canary_errf(err, errlen,
                    "%s.%s is a secret and may not come from %s: set %s in the environment, name a "
                    "mode-0600 file in %s.%s_file, or put it in a config file with mode 0600",
                    k->section, k->name,
                    src == CONFIG_SRC_FLAG ? "the command line" : "a file readable by others", env,
                    k->section, k->name);
        return CANARY_EPERM;
    }
    switch (k->type) {
    case KT_STR:
    case KT_ENUM:
        if (strlen(value) >= k->size) {
            canary_errf(err, errlen, "%s.%s: value is longer than %zu bytes", k->section, k->name,
                        k->size - 1);
            return CANARY_ELIMIT;
        }
        if (k->type == KT_ENUM && !enum_allows(k->choices, value)) {
            canary_errf(err, errlen, "%s.%s: '%s' is not one of %s", k->section, k->name, value,
                        k->choices);
            return CANARY_EINVAL;
        }
        memcpy(field, value, strlen(value) + 1);
        return CANARY_OK;
    case KT_UINT: {
        char *end;
        errno = 0;
        if (value[0] == '-' || value[0] == '\0')
            goto bad_number;
        unsigned long long v = strtoull(value, &end, 10);
        if (*end != '\0' || errno != 0)
            goto bad_number;
        if ((double)v < k->min || (double)v > k->max) {
            canary_errf(err, errlen, "%s.%s: %llu is outside [%.0f, %.0f]", k->section, k->name, v,
                        k->min, k->max);
            return CANARY_EINVAL;
        }
        *(unsigned *)field = (unsigned)v;
        return CANARY_OK;
    }
    case KT_DOUBLE: {
        double d;
        if (!parse_double(value, &d))
            goto bad_number;
        if (d < k->min || d > k->max) {
            canary_errf(err, errlen, "%s.%s: %g is outside [%g, %g]", k->section, k->name, d,
                        k->min, k->max);
            return CANARY_EINVAL;
        }
        *(double *)field = d;
        return CANARY_OK;
    }
    case KT_BOOL:
        if (!parse_bool(value, (bool *)field)) {
            canary_errf(err, errlen, "%s.%s: '%s' is not a boolean (true or false)", k->section,
                        k->name, value);
            return CANARY_EINVAL;
        }
        return CANARY_OK;
    }
    return CANARY_EINVAL;
bad_number:
    canary_errf(err, errlen, "%s.%s: '%s' is not a %s", k->section, k->name, value,
                k->type == KT_UINT ? "non-negative integer" : "finite number");
    return CANARY_EINVAL;
}

static struct config_limit_override *find_override(struct canary_config *cfg, const char *device,
                                                   const char *metric, bool create)
{
    for (size_t i = 0; i < cfg->n_overrides; i++) {
        struct config_limit_override *o = &cfg->overrides[i];
        if (strcmp(o->device, device) == 0 && strcmp(o->metric, metric) == 0)
            return o;
    }
    if (!create)
        return NULL;
    struct config_limit_override *grown =
        realloc(cfg->overrides, (cfg->n_overrides + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->overrides = grown;
    struct config_limit_override *o = &cfg->overrides[cfg->n_overrides++];
    memset(o, 0, sizeof *o);
    snprintf(o->device, sizeof o->device, "%s", device);
    snprintf(o->metric, sizeof o->metric, "%s", metric);
    return o;
}

/* "metric.<m>.<field>" or "device.<id>.<m>.<field>"; device ids may contain dots, metric
 * names and fields may not, so the path is split from the right. */
static int set_override(struct canary_config *cfg, const char *key, const char *value, char *err,
                        size_t errlen)
{
    const char *last = strrchr(key, '.');
    const char *field = last + 1;
    int fi = -1;
    for (int i = 0; i < LIMIT_FIELD_COUNT; i++) {
        if (strcmp(field, limit_field_names[i]) == 0)
            fi = i;
    }
    if (fi < 0) {
        canary_errf(err, errlen,
                    "%s: unknown limit '%s' (known: warn_high, crit_high, warn_low, crit_low, "
                    "hysteresis, max_rate_per_min, flatline_count)",
                    key, field);
        return CANARY_EINVAL;
    }
    char device[READING_ID_BUF] = "";
    char metric[READING_METRIC_BUF];
    const char *rest;
    size_t restlen;
    if (strncmp(key, "metric.", 7) == 0) {
        rest = key + 7;
        restlen = (size_t)(last - rest);
        if (restlen >= sizeof metric || !metric_name_valid(rest, restlen, READING_MAX_METRIC_LEN))
            goto bad_path;
        memcpy(metric, rest, restlen);
        metric[restlen] = '\0';
    } else {
        rest = key + 7; /* "device." */
        const char *mdot = last - 1;
        while (mdot > rest && *mdot != '.')
            mdot--;
        if (mdot <= rest)
            goto bad_path;
        size_t dlen = (size_t)(mdot - rest);
        size_t mlen = (size_t)(last - mdot - 1);
        if (!device_id_valid(rest, dlen, READING_MAX_ID_LEN) ||
            !metric_name_valid(mdot + 1, mlen, READING_MAX_METRIC_LEN))
            goto bad_path;
        memcpy(device, rest, dlen);
        device[dlen] = '\0';
        memcpy(metric, mdot + 1, mlen);
        metric[mlen] = '\0';
    }
    double d;
    if (strcmp(value, "off") == 0) {
        d = fi == LIMIT_FLATLINE ? 0 : NAN;
    } else if (!parse_double(value, &d) || (fi >= LIMIT_HYSTERESIS && d < 0) ||
               (fi == LIMIT_FLATLINE && (d != floor(d) || d > 1e6))) {
        canary_errf(err, errlen, "%s: '%s' is not a valid %s (a number%s, or off)", key, value,
                    field, fi >= LIMIT_HYSTERESIS ? " >= 0" : "");
        return CANARY_EINVAL;
    }
    struct config_limit_override *o = find_override(cfg, device, metric, true);
    if (o == NULL) {
        canary_errf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    struct metric_limits *l = &o->limits;
    double *slots[] = {&l->warn_high, &l->crit_high,  &l->warn_low,
                       &l->crit_low,  &l->hysteresis, &l->max_rate_per_min};
    if (fi == LIMIT_FLATLINE)
        l->flatline_count = (unsigned)d;
    else
        *slots[fi] = d;
    o->set |= 1u << fi;
    return CANARY_OK;
bad_path:
    canary_errf(err, errlen,
                "%s: expected metric.<metric>.<limit> or device.<device-id>.<metric>.<limit>", key);
    return CANARY_EINVAL;
}

int config_set(struct canary_config *cfg, const char *key, const char *value,
               enum config_source src, char *err, size_t errlen)
{
    const char *last = strrchr(key, '.');
    if (last == NULL || last == key || last[1] == '\0') {
        canary_errf(err, errlen, "'%s' is not a key (expected section.key)", key);
        return CANARY_EINVAL;
    }
    if (strncmp(key, "metric.", 7) == 0 || strncmp(key, "device.", 7) == 0)
        return set_override(cfg, key, value, err, errlen);
    if (strncmp(key, "model.", 6) == 0)
        return config_set_model(cfg, key, value, err, errlen);
    if (strncmp(key, "recipient.", 10) == 0 || strncmp(key, "route.", 6) == 0)
        return config_set_notify(cfg, key, value, err, errlen);
    if (strncmp(key, "tamper.", 7) == 0)
        return config_set_tamper(cfg, key, value, err, errlen);

    const char *name = last + 1;
    size_t seclen = (size_t)(last - key);
    const struct key_def *k = find_key(key, seclen, name);
    if (k != NULL) {
        return set_fixed(cfg, k, value, src, false, err, errlen);
    }
    /* <secret>_file: read the secret from a 0600 file. */
    size_t nlen = strlen(name);
    if (nlen > 5 && strcmp(name + nlen - 5, "_file") == 0) {
        char base[64];
        if (nlen - 5 < sizeof base) {
            memcpy(base, name, nlen - 5);
            base[nlen - 5] = '\0';
            k = find_key(key, seclen, base);
            if (k != NULL && k->secret) {
                char secret[CONFIG_STR_MAX];
                int rc = read_secret_file(value, secret, sizeof secret, err, errlen);
                if (rc != 0)
                    return rc;
                rc = set_fixed(cfg, k, secret, src, true, err, errlen);
                memset(secret, 0, sizeof secret);
                return rc;
            }
        }
    }
    canary_errf(err, errlen, "unknown key '%s' (canaryd --help-config lists every key)", key);
    return CANARY_EINVAL;
}

void config_init(struct canary_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        int rc =
            set_fixed(cfg, &key_table[i], key_table[i].def, CONFIG_SRC_DEFAULT, false, NULL, 0);
        (void)rc;
    }
    config_tamper_defaults(&cfg->tamper);
}

int config_copy(struct canary_config *dst, const struct canary_config *src)
{
    *dst = *src;
    dst->overrides = NULL;
    dst->n_overrides = 0;
    dst->model_defs = NULL;
    dst->n_model_defs = 0;
    int rc = config_copy_notify(dst, src);
    if (rc == 0 && src->n_overrides > 0) {
        dst->overrides = malloc(src->n_overrides * sizeof *dst->overrides);
        if (dst->overrides == NULL)
            rc = CANARY_ENOMEM;
        else {
            memcpy(dst->overrides, src->overrides, src->n_overrides * sizeof *dst->overrides);
            dst->n_overrides = src->n_overrides;
        }
    }
    if (rc == 0 && src->n_model_defs > 0) {
        dst->model_defs = malloc(src->n_model_defs * sizeof *dst->model_defs);
        if (dst->model_defs == NULL)
            rc = CANARY_ENOMEM;
        else {
            memcpy(dst->model_defs, src->model_defs, src->n_model_defs * sizeof *dst->model_defs);
            dst->n_model_defs = src->n_model_defs;
        }
    }
    if (rc != 0) {
        config_free(dst);
        config_init(dst);
    }
    return rc;
}

void config_free(struct canary_config *cfg)
{
    free(cfg->overrides);
    cfg->overrides = NULL;
    cfg->n_overrides = 0;
    config_free_models(cfg);
    config_free_notify(cfg);
}

struct file_ctx {
    struct canary_config *cfg;
    enum config_source src;
    FILE *file;
    int line;     /* lines read so far: the line of the entry being handled */
    int err_line; /* the line of the first error found by the handler */
    char *err;
    size_t errlen;
    int rc;
};

/* inih's line reader, counting lines (the Debian build passes no line numbers to handlers)
 * and refusing lines longer than inih's buffer instead of letting it split them. */
static char *read_line(char *buf, int size, void *stream)
{
    struct file_ctx *ctx = stream;
    if (ctx->rc != 0 || fgets(buf, size, ctx->file) == NULL)
        return NULL;
    ctx->line++;
    size_t n = strlen(buf);
    if (n == (size_t)size - 1 && buf[n - 1] != '\n' && !feof(ctx->file)) {
        canary_errf(ctx->err, ctx->errlen, "line %d: longer than %d bytes", ctx->line, size - 2);
        ctx->rc = CANARY_ELIMIT;
        ctx->err_line = ctx->line;
        return NULL;
    }
    /* inih reads an indented line as the continuation of the previous value, so an indented
     * "key = value" would silently become part of the key above it. Indentation carries no
     * meaning in canary's files: drop it. */
    size_t lead = strspn(buf, " \t");
    if (lead > 0)
        memmove(buf, buf + lead, n - lead + 1);
    return buf;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *ctx = user;
    int lineno = ctx->line;
    if (ctx->rc != 0)
        return 0;
    char key[512];
    if (section[0] == '\0') {
        canary_errf(ctx->err, ctx->errlen, "line %d: key '%s' outside a [section]", lineno, name);
        ctx->rc = CANARY_EINVAL;
        ctx->err_line = lineno;
        return 0;
    }
    int n = snprintf(key, sizeof key, "%s.%s", section, name);
    if (n < 0 || (size_t)n >= sizeof key) {
        canary_errf(ctx->err, ctx->errlen, "line %d: key too long", lineno);
        ctx->rc = CANARY_ELIMIT;
        ctx->err_line = lineno;
        return 0;
    }
    char msg[512];
    int rc = config_set(ctx->cfg, key, value, ctx->src, msg, sizeof msg);
    if (rc != 0) {
        canary_errf(ctx->err, ctx->errlen, "line %d: %s", lineno, msg);
        ctx->rc = rc;
        ctx->err_line = lineno;
        return 0;
    }
    return 1;
}

int config_load_file(struct canary_config *cfg, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        canary_errf(err, errlen, "%s: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    char msg[600] = "";
    struct file_ctx ctx = {
        cfg,        (st.st_mode & 077) ? CONFIG_SRC_FILE_SHARED : CONFIG_SRC_FILE,
        f,          0,
        0,          msg,
        sizeof msg, 0};
    int line = ini_parse_stream(read_line, &ctx, on_ini_entry, &ctx);
    fclose(f);
    if (ctx.rc != 0 && (line == 0 || line >= ctx.err_line)) {

        canary_errf(err, errlen, "%s: %s", path, msg);
        return ctx.rc;
    }
    if (line != 0) {
        canary_errf(err, errlen, "%s: line %d: syntax error (expected [section] or key = value)",
                    path, line);
        return CANARY_EINVAL;
    }
    return CANARY_OK;
}

int config_load_env(struct canary_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &key_table[i];
        char name[128];
        env_name(k, "", name, sizeof name);
        const char *v = getenv(name);
        char key[128];
        snprintf(key, sizeof key, "%s.%s", k->section, k->name);
        char msg[512];
        if (v != NULL) {
            int rc = config_set(cfg, key, v, CONFIG_SRC_ENV, msg, sizeof msg);
            if (rc != 0) {
                canary_errf(err, errlen, "%s: %s", name, msg);
                return rc;
            }
        }
        if (k->secret) {
            env_name(k, "_FILE", name, sizeof name);
            v = getenv(name);
            if (v != NULL) {
                strncat(key, "_file", sizeof key - strlen(key) - 1);
                int rc = config_set(cfg, key, v, CONFIG_SRC_ENV, msg, sizeof msg);
                if (rc != 0) {
                    canary_errf(err, errlen, "%s: %s", name, msg);
                    return rc;
                }
            }
        }
    }
    return CANARY_OK;
}

int config_parse_listen(const char *listen, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    const char *h = listen;
    size_t hl;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':')
            return CANARY_EINVAL;
        h = listen + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL)
            return CANARY_EINVAL;
        hl = (size_t)(colon - listen);
        if (memchr(listen, ':', hl) != NULL)
            return CANARY_EINVAL; /* an IPv6 host must be bracketed: [::1]:8080 */
    }
    if (hl == 0 || hl >= hostlen)
        return CANARY_EINVAL;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p > 65535)
        return CANARY_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
        return CANARY_EINVAL;
    *port = (unsigned)p;
    return CANARY_OK;
}

int config_validate(const struct canary_config *cfg, char *err, size_t errlen)
{
    char host[128];
    unsigned port;
    if (config_parse_listen(cfg->http.listen, host, sizeof host, &port) != 0) {
        canary_errf(err, errlen,
                    "http.listen: '%s' is not an address:port (e.g. 127.0.0.1:8080 or [::1]:8080)",
                    cfg->http.listen);
        return CANARY_EINVAL;
    }
    if (cfg->devices.offline_after_s <= cfg->devices.stale_after_s) {
        canary_errf(err, errlen,
                    "devices.offline_after_s (%u) must be greater than stale_after_s (%u)",
                    cfg->devices.offline_after_s, cfg->devices.stale_after_s);
        return CANARY_EINVAL;
    }
    if (cfg->store.path[0] == '\0') {
        canary_errf(err, errlen, "store.path must not be empty");
        return CANARY_EINVAL;
    }
    if (cfg->mqtt.reconnect_min_ms > cfg->mqtt.reconnect_max_ms) {
        canary_errf(err, errlen, "mqtt.reconnect_min_ms (%u) must not exceed reconnect_max_ms (%u)",
                    cfg->mqtt.reconnect_min_ms, cfg->mqtt.reconnect_max_ms);
        return CANARY_EINVAL;
    }
    if (cfg->mqtt.enabled && (cfg->mqtt.client_id[0] == '\0' || cfg->mqtt.host[0] == '\0')) {
        canary_errf(err, errlen,
                    "mqtt.host and mqtt.client_id must not be empty when mqtt.enabled");
        return CANARY_EINVAL;
    }
    if ((cfg->mqtt.tls_cert[0] == '\0') != (cfg->mqtt.tls_key[0] == '\0')) {
        canary_errf(err, errlen, "mqtt.tls_cert and mqtt.tls_key go together: set both or neither");
        return CANARY_EINVAL;
    }
    if (!topic_level_valid(cfg->mqtt.topic_prefix) || !topic_level_valid(cfg->mqtt.ha_prefix)) {
        canary_errf(
            err, errlen,
            "mqtt.topic_prefix and mqtt.ha_prefix must be one topic level: letters, digits, "
            "'_', '-' or '.'");
        return CANARY_EINVAL;
    }
    if (cfg->ingest.max_batch > cfg->ingest.max_inflight) {
        canary_errf(err, errlen,
                    "ingest.max_batch (%u) must not exceed ingest.max_inflight (%u): a full batch "
                    "could never be admitted",
                    cfg->ingest.max_batch, cfg->ingest.max_inflight);
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_overrides; i++) {
        struct metric_limits l;
        const struct config_limit_override *o = &cfg->overrides[i];
        config_metric_limits(cfg, o->device[0] ? o->device : NULL, o->metric, &l);
        if (!isnan(l.warn_high) && !isnan(l.crit_high) && l.crit_high < l.warn_high) {
            canary_errf(err, errlen, "%s%s%s: crit_high (%g) is below warn_high (%g)",
                        o->device[0] ? o->device : "", o->device[0] ? "." : "", o->metric,
                        l.crit_high, l.warn_high);
            return CANARY_EINVAL;
        }
        if (!isnan(l.warn_low) && !isnan(l.crit_low) && l.crit_low > l.warn_low) {
            canary_errf(err, errlen, "%s%s%s: crit_low (%g) is above warn_low (%g)",
                        o->device[0] ? o->device : "", o->device[0] ? "." : "", o->metric,
                        l.crit_low, l.warn_low);
            return CANARY_EINVAL;
        }
    }
    int rc = config_validate_models(cfg, err, errlen);
    if (rc != 0)
        return rc;
    rc = config_validate_notify(cfg, err, errlen);
    if (rc != 0)
        return rc;
    return config_validate_tamper(cfg, err, errlen);
}

static void apply_override(struct metric_limits *out, const struct config_limit_override *o)
{
    const struct metric_limits *l = &o->limits;
    if (o->set & (1u << LIMIT_WARN_HIGH))
        out->warn_high = l->warn_high;
    if (o->set & (1u << LIMIT_CRIT_HIGH))
        out->crit_high = l->crit_high;
    if (o->set & (1u << LIMIT_WARN_LOW))
        out->warn_low = l->warn_low;
    if (o->set & (1u << LIMIT_CRIT_LOW))
        out->crit_low = l->crit_low;
    if (o->set & (1u << LIMIT_HYSTERESIS))
        out->hysteresis = l->hysteresis;
    if (o->set & (1u << LIMIT_MAX_RATE))
        out->max_rate_per_min = l->max_rate_per_min;
    if (o->set & (1u << LIMIT_FLATLINE))
        out->flatline_count = l->flatline_count;
}

void config_metric_limits(const struct canary_config *cfg, const char *device, const char *metric,
                          struct metric_limits *out)
{
    *out = metric_info_or_generic(metric)->limits;
    const struct config_limit_override *dev = NULL;
    for (size_t i = 0; i < cfg->n_overrides; i++) {
        const struct config_limit_override *o = &cfg->overrides[i];
        if (strcmp(o->metric, metric) != 0)
            continue;
        if (o->device[0] == '\0')
            apply_override(out, o);
        else if (device != NULL && strcmp(o->device, device) == 0)
            dev = o;
    }
    if (dev != NULL)
        apply_override(out, dev);
}

/* The shortest decimal form (up to 17 digits) that reads back as exactly v. */
static void format_double(char *buf, size_t len, double v)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void format_value(const struct canary_config *cfg, const struct key_def *k, char *buf,
                         size_t len)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case KT_STR:
    case KT_ENUM:
        if (k->secret)
            snprintf(buf, len, "%s", field[0] ? "<set>" : "");
        else
            snprintf(buf, len, "%s", field);
        break;
    case KT_UINT:
        snprintf(buf, len, "%u", *(const unsigned *)field);
        break;
    case KT_DOUBLE:
        format_double(buf, len, *(const double *)field);
        break;
    case KT_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    }
}

static void write_wrapped_comment(FILE *out, const char *text)
{
    const char *p = text;
    while (*p) {
        size_t take = strlen(p);
        if (take > 94) {
            take = 94;
            while (take > 0 && p[take] != ' ')
                take--;
            if (take == 0)
                take = 94;
        }
        fprintf(out, "# %.*s\n", (int)take, p);
        p += take;
        while (*p == ' ')
            p++;
    }
}

static void write_limit(FILE *out, const char *name, double v)
{
    char buf[40];
    format_double(buf, sizeof buf, v);
    fprintf(out, "%s = %s\n", name, isnan(v) ? "off" : buf);
}

void config_write(const struct canary_config *cfg, FILE *out, bool annotate)
{
    const char *section = "";
    if (annotate) {
        fprintf(out, "# canaryd configuration. Every key is shown with its default value.\n"
                     "# Environment variables CANARY_<SECTION>_<KEY> and --set section.key=value\n"
                     "# override this file. Generated by `canaryd --print-config --defaults`.\n");
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &key_table[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n[%s]\n", section);
        }
        char v[CONFIG_PATH_MAX];
        format_value(cfg, k, v, sizeof v);
        if (annotate) {
            write_wrapped_comment(out, k->help);
            if (k->type == KT_ENUM)
                fprintf(out, "# One of: %s.\n", k->choices);
        }
        if (k->secret) /* never a value that could be loaded back as the secret */
            fprintf(out, "# %s =%s\n", k->name, v[0] ? " <set>" : "");
        else
            fprintf(out, "%s = %s\n", k->name, v);
        if (annotate && i + 1 < N_KEYS && strcmp(key_table[i + 1].section, section) == 0)
            fputc('\n', out);
    }
    if (annotate) {
        fprintf(out,
                "\n# Alert limits per metric and per device (defaults from the metric catalogue\n"
                "# in docs/DETECTORS.md). Keys: warn_high, crit_high, warn_low, crit_low,\n"
                "# hysteresis, max_rate_per_min, flatline_count; \"off\" disables one.\n"
                "# [metric.gas_ppm]\n# warn_high = 1000\n#\n"
                "# [device.kitchen-1.gas_ppm]\n# crit_high = 3000\n");
    }
    for (size_t i = 0; i < cfg->n_overrides; i++) {
        const struct config_limit_override *o = &cfg->overrides[i];
        if (o->device[0])
            fprintf(out, "\n[device.%s.%s]\n", o->device, o->metric);
        else
            fprintf(out, "\n[metric.%s]\n", o->metric);
        const double *vals[] = {&o->limits.warn_high,  &o->limits.crit_high,
                                &o->limits.warn_low,   &o->limits.crit_low,
                                &o->limits.hysteresis, &o->limits.max_rate_per_min};
        for (int f = 0; f < LIMIT_FLATLINE; f++) {
            if (o->set & (1u << f))
                write_limit(out, limit_field_names[f], *vals[f]);
        }
        if (o->set & (1u << LIMIT_FLATLINE))
            fprintf(out, "flatline_count = %u\n", o->limits.flatline_count);
    }
    config_write_models(cfg, out);
    if (annotate) {
        fprintf(out, "\n# Alert delivery: recipients and routes (docs/ALERTING.md).\n"
                     "# [recipient.alice]\n# sms = +15005550006\n# email = alice@example.com\n"
                     "# quiet_hours = 22:00-07:00 +01:00\n#\n"
                     "# [route.gas]\n# severities = >=high\n# kinds = gas_leak, fire\n"
                     "# devices = kitchen-*\n# steps = sms:alice, voice:alice, sms:bob\n");
    }
    config_write_notify(cfg, out);
    config_write_tamper(cfg, out, annotate);
}

/* Text in a Markdown table cell: '|' would end the cell, even inside backticks. */
static void write_table_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void config_write_markdown(FILE *out)
{

    struct canary_config defaults;
    config_init(&defaults);
    fprintf(out, "| key | default | environment | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &key_table[i];
        char v[CONFIG_PATH_MAX];
        format_value(&defaults, k, v, sizeof v);
        char env[128];
        env_name(k, "", env, sizeof env);
        fprintf(out, "| `%s.%s` | `%s` | `%s` | ", k->section, k->name, v[0] ? v : "(empty)", env);
        write_table_text(out, k->help);
        if (k->type == KT_ENUM) {
            fprintf(out, " One of: `");
            write_table_text(out, k->choices);
            fprintf(out, "`.");
        }
        fprintf(out, " |\n");
    }
    config_tamper_markdown(out);
    config_free(&defaults);
}

bool config_name_valid(const char *p, size_t n, size_t max_len)
{
    if (n == 0 || n >= max_len)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool config_copy_text(char *dst, size_t cap, const char *value)
{
    size_t n = strlen(value);
    if (n >= cap)
        return false;
    memcpy(dst, value, n + 1);
    return true;
}
