/* config.h — canaryd's configuration: every key, its default, and where values come from.
 *
 * Precedence, lowest first: the embedded defaults, the configuration file (--config or
 * CANARY_CONFIG), environment variables (CANARY_<SECTION>_<KEY>, e.g. CANARY_HTTP_LISTEN),
 * and command-line flags (--set section.key=value). One table in config.c lists every
 * fixed key with its type, default, bounds and help; the example file etc/canary.conf.example
 * and docs/CONFIGURATION.md are generated from it, so they cannot drift from the code.
 *
 * Besides the fixed keys, per-metric and per-device alert limits are configurable:
 *   [metric.gas_ppm]            warn_high = 800       (every device)
 *   [device.kitchen-1.gas_ppm]  crit_high = 3000      (one device; beats the metric section)
 * as --set metric.gas_ppm.warn_high=800 on the command line. "off" switches a limit off.
 *
 * Secrets (keys marked secret, e.g. api.admin_token) are accepted only from the
 * environment, from a config file whose mode gives no access to group or others (0600),
 * or from a file named by the companion key <key>_file that has such a mode. They are
 * never printed: config_write() shows them as "<set>". */
#ifndef CANARY_CORE_CONFIG_H
#define CANARY_CORE_CONFIG_H

#include "core/config_tamper.h"
#include "core/metric.h"
#include "core/reading.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR_MAX  256
#define CONFIG_PATH_MAX 1024

/* A per-metric (device[0] == '\0') or per-device override of metric limits. Fields that
 * were not set keep NAN / UINT_MAX sentinels and the `set` mask says which were given. */
struct config_limit_override {
    char device[READING_ID_BUF];
    char metric[READING_METRIC_BUF];
    struct metric_limits limits;
    unsigned set; /* bit i set: field i of enum config_limit_field was given */
};

enum config_limit_field {
    LIMIT_WARN_HIGH,
    LIMIT_CRIT_HIGH,
    LIMIT_WARN_LOW,
    LIMIT_CRIT_LOW,
    LIMIT_HYSTERESIS,
    LIMIT_MAX_RATE,
    LIMIT_FLATLINE,
    LIMIT_FIELD_COUNT
};

/* A model canaryd scores live ([model.<name>] sections; docs/MODELS.md). */
#define CONFIG_MODEL_NAME_MAX 48
#define CONFIG_MODELS_MAX     64 /* [model.<name>] sections */
struct config_model {
    char name[CONFIG_MODEL_NAME_MAX];
    char path[CONFIG_PATH_MAX];   /* the model file (canary train --out) */
    char devices[CONFIG_STR_MAX]; /* comma-separated device ids or globs ("site-a-*") */
    char kind[64];                /* or: every device registered with this kind */
    unsigned consecutive;         /* readings at or above the threshold before an alert;
                                     0 = models.consecutive */
    double threshold;             /* NAN = the model's own (from its contamination) */
    /* Gas classifier models only (a gas bundle, ml/gas.h; docs/GAS.md "In canaryd"): */
    char dangerous[CONFIG_STR_MAX]; /* comma-separated class names that raise the alert,
                                       each optionally ":gas_leak" or ":fire" */
    double probability;             /* NAN = 0.9: the level a dangerous class must reach */
    char alert[16];                 /* "gas_leak" (the default when "") or "fire" */
    bool best_probability_only;     /* probabilities = best: store only the winner's */
};

/* Alert delivery routing ([recipient.<name>] and [route.<name>] sections, config_notify.c;
 * docs/ALERTING.md). Parsed and validated here; notify/route.h turns them into the
 * targets of one escalation step. */
#define CONFIG_NOTIFY_NAME_MAX 48
#define CONFIG_PHONE_MAX       20 /* "+" and at most 15 digits (E.164) */
#define CONFIG_ROUTE_STEPS_MAX 16 /* escalation steps in one route */
#define CONFIG_STEP_TARGETS    8  /* channel:recipient pairs in one step ("sms:a+email:a") */

/* A daily window, in minutes of the day at a fixed UTC offset ("22:00-07:00 +01:00"). */
struct config_quiet_hours {
    int mode;           /* 0: not given (inherit notify.quiet_hours), 1: the window, 2: "off" */
    int start_min;      /* first quiet minute, 0..1439 */
    int end_min;        /* first minute after the window; < start_min: crosses midnight */
    int utc_offset_min; /* local time = UTC + this */
};

struct config_recipient {
    char name[CONFIG_NOTIFY_NAME_MAX];
    char sms[CONFIG_PHONE_MAX];      /* E.164, "" = none */
    char whatsapp[CONFIG_PHONE_MAX]; /* E.164, "" = none */
    char voice[CONFIG_PHONE_MAX];    /* E.164, "" = none */
    char email[CONFIG_STR_MAX];
    char webhook[CONFIG_STR_MAX];    /* http(s) URL */
    unsigned rate_limit_per_hour;    /* notifications per hour; 0 = unlimited */
    char quiet_hours_text[64];       /* as written */
    struct config_quiet_hours quiet; /* overrides notify.quiet_hours when mode != 0 */
};

struct config_route_target {
    char channel[16]; /* sms | whatsapp | voice | webhook | email */
    char recipient[CONFIG_NOTIFY_NAME_MAX];
};

struct config_route_step {
    struct config_route_target targets[CONFIG_STEP_TARGETS];
    unsigned n_targets;
};

struct config_route {
    char name[CONFIG_NOTIFY_NAME_MAX];
    char severities[64];          /* as written: "high,critical" or ">=high"; "" = all */
    unsigned severity_mask;       /* bit s: severity s matches; 0 = all */
    char kinds[CONFIG_STR_MAX];   /* comma-separated alert kinds; "" = all */
    char devices[CONFIG_STR_MAX]; /* comma-separated ids or globs; "" = all */
    char steps_text[CONFIG_STR_MAX];
    struct config_route_step steps[CONFIG_ROUTE_STEPS_MAX]; /* step i = escalation step i */
    unsigned n_steps;
};

struct canary_config {
    struct {
        char listen[CONFIG_STR_MAX];     /* host:port; port 0 picks a free port */
        unsigned threads;                /* HTTP threads; 0 = one per core */
        unsigned max_body_bytes;         /* larger request bodies get 413 */
        unsigned max_connections;        /* simultaneous connections */
        unsigned max_connections_per_ip; /* simultaneous connections from one address */
        unsigned idle_timeout_s;         /* close a connection idle this long */
        unsigned header_timeout_s;       /* a request's headers must arrive within this */
        unsigned request_timeout_s;      /* a request's body must arrive within this */
        bool request_log;                /* one log line per request */

        /* HTTPS (api/http_tls.h): only TLS is spoken when tls_cert is set. */
        char tls_cert[CONFIG_PATH_MAX];        /* PEM certificate (chain) */
        char tls_key[CONFIG_PATH_MAX];         /* its private key */
        char tls_key_password[CONFIG_STR_MAX]; /* secret: opens an encrypted tls_key */
    } http;
    struct {
        /* Rate limits (core/limiter.h, docs/HARDENING.md); a rate of 0 switches one off. */
        double http_rate;          /* requests/s from one client address (IPv6: its /64) */
        double http_burst;         /* ... and the burst above that rate */
        bool http_exempt_loopback; /* 127.0.0.0/8 and ::1 are not limited */
        unsigned http_table;       /* addresses tracked (fixed memory; least recent evicted) */
        double device_rate;        /* readings/s of one device, HTTP and MQTT together */
        double device_burst;       /* ... and the burst above that rate */
        unsigned device_table;     /* devices tracked */
    } limits;
    struct {
        unsigned max_batch;      /* readings in one request */
        unsigned max_metrics;    /* values in one reading */
        unsigned max_device_len; /* bytes in a device id */
        unsigned max_metric_len; /* bytes in a metric name */
        unsigned max_past_s;     /* oldest accepted timestamp, seconds before now */
        unsigned max_future_s;   /* newest accepted timestamp, seconds after now */
        bool strict_fields;      /* reject unknown fields in a reading */
        bool auto_register;      /* a device appears on its first valid reading */
        unsigned max_inflight;   /* readings admitted but not yet stored; then 503 */
        unsigned seq_window;     /* accept unseen seqs this far below the highest */
    } ingest;
    struct {
        unsigned workers; /* detection workers; 0 = one per core */
    } pipeline;
    struct {
        char path[CONFIG_PATH_MAX];       /* SQLite database file */
        char synchronous[16];             /* "full" (survives power loss) or "normal" */
        unsigned commit_max_readings;     /* readings in one group commit */
        unsigned compact_interval_ms;     /* how often the log is compacted into chunks */
        unsigned chunk_max_readings;      /* readings in one stored chunk */
        unsigned chunk_max_span_s;        /* time one chunk may span */
        unsigned busy_timeout_ms;         /* wait for a locked database this long */
        unsigned retention_readings_days; /* 0 = keep forever */
        unsigned retention_alerts_days;   /* resolved alerts; 0 = keep forever */
        unsigned retention_audit_days;    /* the audit log; 0 = keep forever */
    } store;
    struct {
        unsigned stale_after_s;   /* no reading for this long: stale */
        unsigned offline_after_s; /* no reading for this long: offline */
        unsigned max_devices;     /* devices canaryd will track; more are refused */
        unsigned max_metrics;     /* distinct metrics one device may have */
    } devices;
    struct {
        unsigned warmup_readings;  /* readings before a series is scored */
        double level_alpha;        /* EWMA weight of the level */
        double scale_alpha;        /* EWMA weight of the deviation scale */
        double anomaly_threshold;  /* score at or above which FLAG_ANOMALY is set */
        double z_half;             /* robust z-score that maps to score 0.5 */
        double min_relative_scale; /* the scale is at least this fraction of the level */
        unsigned rate_window_s;    /* window of the rate-of-change detector */
        double gap_factor;         /* gap: interval > gap_factor x usual interval ... */
        unsigned gap_min_s;        /* ... and > gap_min_s */
    } detect;
    struct {
        unsigned open_after;           /* consecutive readings before a non-critical alert opens */
        unsigned resolve_after_s;      /* clear this long: auto-resolve */
        unsigned reopen_window_s;      /* back within this after resolving: same alert re-opens */
        char anomaly_severity[16];     /* severity of anomaly alerts */
        char offline_severity[16];     /* severity of offline alerts ("off" = none) */
        char gas_offline_severity[16]; /* a gas-sensing device's unexpected MQTT offline */
    } alerts;
    struct {
        /* Commands sent to a device when one of its alerts opens: "SEVERITY: cmd=state, ..."
         * (decide/action.h), "" = none. */
        char gas_leak[CONFIG_STR_MAX];
        char fire[CONFIG_STR_MAX];
        char threshold[CONFIG_STR_MAX];
        char anomaly[CONFIG_STR_MAX];
        char rate[CONFIG_STR_MAX];
        char sensor_fault[CONFIG_STR_MAX];
        char offline[CONFIG_STR_MAX];
    } actions;
    struct {
        bool enabled;                   /* connect to a broker at all */
        char host[CONFIG_STR_MAX];      /* broker host */
        unsigned port;                  /* broker port */
        char client_id[CONFIG_STR_MAX]; /* canaryd's client id (its persistent session) */
        char username[CONFIG_STR_MAX];  /* "" = anonymous */
        char password[CONFIG_STR_MAX];  /* secret */
        char protocol[8];               /* "5" or "3.1.1" */
        unsigned keepalive_s;           /* MQTT keep-alive */
        unsigned session_expiry_s;      /* MQTT 5: how long the broker keeps the session */
        char tls_ca[CONFIG_PATH_MAX];   /* CA file: TLS to the broker when set */
        char tls_cert[CONFIG_PATH_MAX]; /* client certificate (optional) */
        char tls_key[CONFIG_PATH_MAX];  /* client key (optional) */
        char topic_prefix[64];          /* first topic level, "canary" */
        unsigned qos;                   /* subscription QoS for readings */
        char journal[CONFIG_PATH_MAX];  /* crash-safe log of received messages */
        unsigned max_payload;           /* larger messages are refused */
        unsigned batch_max;             /* messages in one pipeline job */
        unsigned batch_wait_ms;         /* longest a message waits for its job */
        unsigned reconnect_min_ms;      /* first reconnect delay */
        unsigned reconnect_max_ms;      /* longest reconnect delay */
        unsigned receive_maximum;       /* MQTT 5: QoS 1 messages in flight to canaryd */
        unsigned command_timeout_s;     /* a command unacknowledged this long times out */
        bool ha_discovery;              /* publish Home Assistant discovery configs */
        char ha_prefix[64];             /* Home Assistant discovery prefix */
        unsigned ha_state_interval_s;   /* at most one state update per device per interval */
    } mqtt;
    struct {
        unsigned consecutive; /* default for model.<name>.consecutive */
    } models;
    struct {
        char level[16]; /* debug | info | warn | error */
    } log;
    struct {
        char admin_token[CONFIG_STR_MAX]; /* secret: bearer token for state-changing calls */
        /* Access control (docs/ACCESS.md): on once a user exists, or always with require_auth */
        bool require_auth;            /* every /api/v1 call needs a credential even without users */
        unsigned session_ttl_s;       /* a dashboard session ends this long after login */
        unsigned session_idle_s;      /* ... or after this long without a request */
        bool cookie_secure;           /* Secure on the session cookie without HTTPS (a TLS proxy) */
        unsigned login_max_failures;  /* failed logins of one name in login_window_s: lockout */
        unsigned login_window_s;      /* failures older than this are forgotten */
        unsigned login_lockout_s;     /* the first lockout, doubled at each repeat */
        unsigned login_lockout_max_s; /* the longest lockout */
    } api;
    struct {
        char twilio_base_url[CONFIG_STR_MAX]; /* tests point it at a fake */
        char twilio_account_sid[64];
        char twilio_auth_token[CONFIG_STR_MAX];      /* secret */
        char twilio_from[CONFIG_PHONE_MAX];          /* E.164 sender for SMS and calls */
        char twilio_whatsapp_from[CONFIG_PHONE_MAX]; /* E.164 WhatsApp sender */
        char smtp_url[CONFIG_STR_MAX];               /* smtp://host:587 or smtps://host:465 */
        char smtp_username[CONFIG_STR_MAX];
        char smtp_password[CONFIG_STR_MAX]; /* secret */
        char smtp_from[CONFIG_STR_MAX];
        bool smtp_starttls;                  /* require STARTTLS on smtp:// */
        char webhook_secret[CONFIG_STR_MAX]; /* secret: HMAC-SHA256 key */
        char quiet_hours[64];                /* "22:00-07:00 +01:00", "" = none */
        double escalate_after_min;           /* unacknowledged this long: next step */
        char escalate_severity[16];          /* lowest severity that escalates */
        unsigned workers;                    /* delivery threads; 0 = no delivery */
        unsigned max_attempts;               /* tries before a notification fails */
        unsigned retry_min_s;                /* first retry delay (doubles, with jitter) */
        unsigned retry_max_s;                /* longest retry delay */
        char utc_offset[16];                 /* times in messages: "+01:00"; "" = UTC */
    } notify;
    struct {
        char provider[16];            /* off | openai | gemini */
        char url[CONFIG_STR_MAX];     /* API base URL; "" = the provider's */
        char model[128];              /* model name */
        char api_key[CONFIG_STR_MAX]; /* secret */
        unsigned timeout_ms;          /* the whole request */
    } llm;
    struct {
        char unsigned_policy[16];        /* accept | flag | reject: devices without credentials */
        char master_key[CONFIG_STR_MAX]; /* secret: encrypts device keys at rest */
        unsigned key_overlap_s;          /* an old key's validity after a rotation */
    } security;
    struct config_tamper tamper; /* [tamper]: tamper checks and trust (config_tamper.c) */

    struct config_limit_override *overrides; /* heap array, owned by the config */
    size_t n_overrides;
    struct config_model *model_defs; /* heap array, owned by the config */
    size_t n_model_defs;
    struct config_recipient *recipients; /* heap array, owned by the config */
    size_t n_recipients;
    struct config_route *routes; /* heap array, owned by the config */
    size_t n_routes;
};

/* Where a value came from; decides whether a secret may be set. */
enum config_source {
    CONFIG_SRC_DEFAULT,
    CONFIG_SRC_FILE,        /* a file readable only by its owner */
    CONFIG_SRC_FILE_SHARED, /* a file readable by group or others */
    CONFIG_SRC_ENV,
    CONFIG_SRC_FLAG,
};

/* Fills cfg with the embedded defaults. Free with config_free(). */
void config_init(struct canary_config *cfg);

/* A deep copy of src into dst (dst is overwritten, not freed first): every list is the
 * copy's own, so each is freed with its own config_free(). Returns 0 or CANARY_ENOMEM
 * (dst is then freed and empty). */
int config_copy(struct canary_config *dst, const struct canary_config *src);

/* Frees what the config owns (the override list). */
void config_free(struct canary_config *cfg);

/* Sets one key ("http.listen", "metric.gas_ppm.warn_high",
 * "device.kitchen-1.gas_ppm.crit_high", "api.admin_token_file"). Returns 0, or a negative
 * code with a message in err (unknown key, bad value, out of bounds, secret from a
 * forbidden source). */
int config_set(struct canary_config *cfg, const char *key, const char *value,
               enum config_source src, char *err, size_t errlen);

/* Reads a configuration file. Returns 0 or an error with "path:line: message" in err. */
int config_load_file(struct canary_config *cfg, const char *path, char *err, size_t errlen);

/* Applies CANARY_<SECTION>_<KEY> environment variables for every fixed key. */
int config_load_env(struct canary_config *cfg, char *err, size_t errlen);

/* Checks relations between keys (offline_after_s > stale_after_s, limits within the
 * hard ceilings, a parseable listen address...). Returns 0 or an error with a message. */
int config_validate(const struct canary_config *cfg, char *err, size_t errlen);

/* Writes the configuration in file syntax. With annotate, every key is preceded by its help
 * and default (that is how etc/canary.conf.example is made). Secrets print as "<set>". */
void config_write(const struct canary_config *cfg, FILE *out, bool annotate);

/* Helpers of the dynamic sections ([model.*], [recipient.*], [route.*]): a section name is
 * 1 to max_len - 1 letters, digits, '-' and '_'; config_copy_text copies value into dst of
 * cap bytes, or returns false when it does not fit. */
bool config_name_valid(const char *p, size_t n, size_t max_len);
bool config_copy_text(char *dst, size_t cap, const char *value);

/* [model.<name>] sections (config_models.c): "model.<name>.<field>" with the fields path,
 * devices, kind, consecutive, threshold, and for gas classifier models dangerous, probability,
 * alert and probabilities. Returns 0 or an error naming the key. Which fields suit the model's file
 * (an Isolation Forest or a gas bundle) is checked when models/ loads it. */
int config_set_model(struct canary_config *cfg, const char *key, const char *value, char *err,
                     size_t errlen);

/* Every model has a path and something to apply to (devices or kind). */
int config_validate_models(const struct canary_config *cfg, char *err, size_t errlen);

/* Writes the [model.<name>] sections in file syntax. */
void config_write_models(const struct canary_config *cfg, FILE *out);

/* Frees the model list (config_free calls it). */
void config_free_models(struct canary_config *cfg);

/* [recipient.<name>] and [route.<name>] sections (config_notify.c):
 * "recipient.<name>.<field>" (sms, whatsapp, voice, email, webhook, rate_limit_per_hour,
 * quiet_hours) and "route.<name>.<field>" (severities, kinds, devices, steps). Each value is
 * parsed when set. Returns 0 or an error naming the key. */
int config_set_notify(struct canary_config *cfg, const char *key, const char *value, char *err,
                      size_t errlen);

/* Relations: every route names known recipients that have an address for the channel;
 * the channels used have their provider configured (Twilio, SMTP, webhook secret);
 * notify.quiet_hours parses. Returns 0 or an error naming the key. */
int config_validate_notify(const struct canary_config *cfg, char *err, size_t errlen);

/* Writes the [recipient.<name>] and [route.<name>] sections in file syntax. */
void config_write_notify(const struct canary_config *cfg, FILE *out);

/* Frees the recipient and route lists (config_free calls it). */
void config_free_notify(struct canary_config *cfg);

/* Deep-copies src's recipient and route lists into dst (whose own lists are not freed).
 * Returns 0 or CANARY_ENOMEM (dst then holds what was copied; config_free works). */
int config_copy_notify(struct canary_config *dst, const struct canary_config *src);

/* Address checks of [recipient.*] and the notify CLI: E.164 phone numbers ('+', a country
 * code not starting with 0, 8 to 15 digits: ITU-T E.164 section 6); e-mail addresses
 * (local@domain.tld without blanks, brackets, commas, quotes or control characters: enough
 * to catch a slip, the SMTP server has the last word); http:// or https:// URLs with a host
 * and no blanks. */
bool config_phone_valid(const char *s);
bool config_email_valid(const char *s);
bool config_url_valid(const char *s);

/* "+01:00", "-05:30", "UTC+02:00", "" (= 0) into minutes east of UTC. Returns 0 or
 * CANARY_EINVAL. */
int config_utc_offset_parse(const char *text, int *minutes);

/* Parses a quiet-hours window "HH:MM-HH:MM" with an optional UTC offset ("UTC", "+01:00",
 * "UTC-05:30"), or "off" (mode 2). Returns 0 or CANARY_EINVAL with a message. */
int config_quiet_hours_parse(const char *text, struct config_quiet_hours *out, char *err,
                             size_t errlen);

/* Whether now_ms (UTC) falls inside the window (mode 1); false for modes 0 and 2. */
bool config_quiet_hours_active(const struct config_quiet_hours *q, int64_t now_ms);

/* Finds a recipient by name; NULL if none. */
const struct config_recipient *config_recipient_find(const struct canary_config *cfg,
                                                     const char *name);

/* Writes a Markdown table of every key (section, key, default, meaning) for the docs. */
void config_write_markdown(FILE *out);

/* Resolves the limits of (device, metric): catalogue defaults, then [metric.M], then
 * [device.D.M]. */
void config_metric_limits(const struct canary_config *cfg, const char *device, const char *metric,
                          struct metric_limits *out);

/* Parses "host:port" (IPv4, or [IPv6]:port). Returns 0 or CANARY_EINVAL. */
int config_parse_listen(const char *listen, char *host, size_t hostlen, unsigned *port);

#endif
