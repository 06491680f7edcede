/* main.c — canaryd: configuration, start-up, and an orderly shutdown.
 *
 * Start: defaults -> config file -> environment -> flags; validate; open the store and
 * start the pipeline; listen. SIGINT/SIGTERM: stop accepting connections, drain the
 * pipeline (every admitted reading is committed and answered), stop the HTTP server,
 * close the store. A second signal during shutdown exits at once. SIGHUP reloads the
 * models: the configuration is read again and its [model.*] files loaded (models.h). */
#include "api/http.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "decide/action.h"
#include "models/models.h"
#include "mqtt/mqtt.h"
#include "notify/notifier.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "verify/auth.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canaryd [options]\n"
            "\n"
            "canary's daemon: ingests sensor readings over HTTP and MQTT, scores them, raises\n"
            "alerts, commands devices, stores everything (SQLite) and serves the REST API.\n"
            "With no options it runs on its embedded defaults: HTTP on 127.0.0.1:8080,\n"
            "database ./var/canary.db, MQTT off (--set mqtt.enabled=true connects to a\n"
            "broker on 127.0.0.1:1883; docs/MQTT.md).\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     read this configuration file (also: CANARY_CONFIG)\n"
            "  -s, --set KEY=VALUE   set one key, e.g. --set http.listen=0.0.0.0:8080 or\n"
            "                        --set metric.gas_ppm.warn_high=800 (repeatable)\n"
            "  -l, --listen ADDR     the same as --set http.listen=ADDR\n"
            "  -d, --db PATH         the same as --set store.path=PATH\n"
            "  -v, --log-level LVL   the same as --set log.level=LVL (debug|info|warn|error)\n"
            "      --check-config    validate the configuration, print it, and exit\n"
            "      --print-config    print the effective configuration and exit\n"
            "      --defaults        with --print-config: the annotated defaults\n"
            "      --help-config     print every key as a Markdown table and exit\n"
            "      --ready-file FILE write the HTTP port to FILE once ready (for scripts)\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n"
            "\n"
            "Precedence: defaults < file < environment (CANARY_<SECTION>_<KEY>) < flags.\n"
            "Secrets (api.admin_token) come only from the environment or mode-0600 files.\n"
            "Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on bad usage\n"
            "or configuration.\n");
}

struct options {
    const char *config;
    const char *ready_file;
    bool check, print, defaults, help_config;
};

static int apply_flag(struct canary_config *cfg, const char *key, const char *value)
{
    char err[512];
    if (config_set(cfg, key, value, CONFIG_SRC_FLAG, err, sizeof err) != 0) {
        fprintf(stderr, "canaryd: %s\n", err);
        return 2;
    }
    return 0;
}

/* Parses flags into cfg (after file and environment, which the flags override: the
 * flags are parsed twice, first only for --config). Returns -1 to go on, else an exit code. */
static int parse_flags(int argc, char **argv, struct canary_config *cfg, struct options *o,
                       bool apply)
{
    enum { OPT_CHECK = 256, OPT_PRINT, OPT_DEFAULTS, OPT_HELP_CONFIG, OPT_READY, OPT_VERSION };
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, 's'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"db", required_argument, NULL, 'd'},
                                             {"log-level", required_argument, NULL, 'v'},
                                             {"check-config", no_argument, NULL, OPT_CHECK},
                                             {"print-config", no_argument, NULL, OPT_PRINT},
                                             {"defaults", no_argument, NULL, OPT_DEFAULTS},
                                             {"help-config", no_argument, NULL, OPT_HELP_CONFIG},
                                             {"ready-file", required_argument, NULL, OPT_READY},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, OPT_VERSION},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = apply ? 0 : 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:l:d:v:h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 's': {
            if (!apply)
                break;
            char *eq = strchr(optarg, '=');
            if (eq == NULL) {
                fprintf(stderr, "canaryd: --set takes KEY=VALUE, got '%s'\n", optarg);
                return 2;
            }
            *eq = '\0';
            rc = apply_flag(cfg, optarg, eq + 1);
            *eq = '=';
            break;
        }
        case 'l':
            rc = apply ? apply_flag(cfg, "http.listen", optarg) : 0;
            break;
        case 'd':
            rc = apply ? apply_flag(cfg, "store.path", optarg) : 0;
            break;
        case 'v':
            rc = apply ? apply_flag(cfg, "log.level", optarg) : 0;
            break;
        case OPT_CHECK:
            o->check = true;
            break;
        case OPT_PRINT:
            o->print = true;
            break;
        case OPT_DEFAULTS:
            o->defaults = true;
            break;
        case OPT_HELP_CONFIG:
            o->help_config = true;
            break;
        case OPT_READY:
            o->ready_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("canaryd %s\n", CANARY_VERSION);
            return 0;
        default:
            if (!apply) {
                usage(stderr);
                return 2;
            }
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "canaryd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* Reads the configuration: defaults (cfg is config_init'ed) -> file -> environment ->
 * flags, then validates it. Returns -1 to go on, else an exit code, with the message in err
 * ("" when parse_flags already printed it: usage, --help, --version). */
static int read_config(int argc, char **argv, struct canary_config *cfg, struct options *o,
                       char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = parse_flags(argc, argv, cfg, o, false);
    if (rc >= 0)
        return rc;
    if (o->config == NULL)
        o->config = getenv("CANARY_CONFIG");
    if (o->config != NULL && o->config[0] != '\0' &&
        config_load_file(cfg, o->config, err, errlen) != 0)
        return 2;
    if (config_load_env(cfg, err, errlen) != 0)
        return 2;
    rc = parse_flags(argc, argv, cfg, o, true);
    if (rc >= 0)
        return rc;
    struct action_rules rules;
    char why[1024];
    if (config_validate(cfg, why, sizeof why) != 0 ||
        action_rules_load(cfg, &rules, why, sizeof why) != 0) {
        snprintf(err, errlen, "invalid configuration: %s", why);
        return 2;
    }
    return -1;
}

static int load_config(int argc, char **argv, struct canary_config *cfg, struct options *o)
{
    char err[1024];
    int rc = read_config(argc, argv, cfg, o, err, sizeof err);
    if (rc >= 0 && err[0] != '\0')
        fprintf(stderr, "canaryd: %s\n", err);
    return rc;
}

/* The configuration source of a model reload (SIGHUP, POST /api/v1/models/reload): the
 * same file, environment and flags as at start, read again. */
struct argv_ref {
    int argc;
    char **argv;
};

static int reread_config(void *arg, struct canary_config *fresh, char *err, size_t errlen)
{
    const struct argv_ref *a = arg;
    struct options o = {0};
    int rc = read_config(a->argc, a->argv, fresh, &o, err, errlen);
    if (rc < 0)
        return 0;
    if (err[0] == '\0')
        snprintf(err, errlen, "the configuration cannot be read again");
    return CANARY_EINVAL;
}

static void *second_signal(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    log_warn("canaryd.forced_exit", "signal=%d", sig);
    _exit(1);
}

/* Reloads the keyring from the store (at start, and on SIGHUP). */
static int reload_auth(struct auth *a, const struct canary_config *cfg, char *err, size_t errlen)
{
    struct store_options opt = {.path = cfg->store.path,
                                .read_only = true,
                                .busy_timeout_ms = cfg->store.busy_timeout_ms,
                                .chunk_max_readings = 1,
                                .chunk_max_span_ms = 1};
    struct store *s = NULL;
    int rc = store_open(&s, &opt, err, errlen);
    if (rc == 0)
        rc = auth_reload(a, s, err, errlen);
    store_close(s);
    return rc;
}

/* The keyring ingest verifies with (verify/auth.h), loaded from the store the pipeline has
 * just opened and migrated. */
static int start_auth(struct auth **out, const struct canary_config *cfg, char *err, size_t errlen)
{
    int rc = auth_new(out, cfg, err, errlen);
    if (rc != 0)
        return rc;
    rc = reload_auth(*out, cfg, err, errlen);
    if (rc != 0) {
        auth_free(*out);
        *out = NULL;
    }
    return rc;
}

static int write_ready_file(const char *path, unsigned port)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* atomic: readers never see a half-written file */
}

int main(int argc, char **argv)
{
    struct canary_config cfg;
    config_init(&cfg);
    struct options o = {0};
    int rc = load_config(argc, argv, &cfg, &o);
    if (rc >= 0) {
        config_free(&cfg);
        return rc;
    }
    if (o.help_config || o.print || o.check) {
        if (o.help_config) {
            config_write_markdown(stdout);
        } else {
            struct canary_config defaults;
            config_init(&defaults);
            config_write(o.defaults ? &defaults : &cfg, stdout, o.defaults);
            config_free(&defaults);
            if (o.check)
                fprintf(stderr, "canaryd: configuration ok\n");
        }
        config_free(&cfg);
        return 0;
    }
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(cfg.log.level, &level);
    log_set_level(level);

    /* Signals are taken synchronously by this thread; every other thread blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    struct pipeline *p = NULL;
    if (pipeline_start(&p, &cfg, err, sizeof err) != 0) {
        log_error("canaryd.start_failed", "stage=store error=\"%s\"", err);
        config_free(&cfg);
        return 1;
    }
    struct auth *auth = NULL;
    if (start_auth(&auth, &cfg, err, sizeof err) != 0) {
        log_error("canaryd.start_failed", "stage=keyring error=\"%s\"", err);
        pipeline_free(p);
        config_free(&cfg);
        return 1;
    }
    pipeline_set_auth(p, auth);
    struct notifier *notifier = NULL;
    if (notifier_start(&notifier, &cfg, p, err, sizeof err) != 0) {
        log_error("canaryd.start_failed", "stage=notify error=\"%s\"", err);
        pipeline_free(p);
        auth_free(auth);
        config_free(&cfg);
        return 1;
    }
    struct mqtt *mqtt = NULL;
    if (mqtt_start(&mqtt, &cfg, p, err, sizeof err) != 0) {
        log_error("canaryd.start_failed", "stage=mqtt error=\"%s\"", err);
        pipeline_stop(p);
        notifier_stop(notifier);
        pipeline_free(p);
        auth_free(auth);
        config_free(&cfg);
        return 1;
    }
    struct http_server *http = NULL;
    if (http_start(&http, &cfg, p, mqtt, err, sizeof err) != 0) {
        log_error("canaryd.start_failed", "stage=http error=\"%s\"", err);
        mqtt_free(mqtt);
        pipeline_stop(p);
        notifier_stop(notifier);
        pipeline_free(p);
        auth_free(auth);
        config_free(&cfg);
        return 1;
    }
    if (o.ready_file != NULL && write_ready_file(o.ready_file, http_port(http)) != 0)
        log_warn("canaryd.ready_file_failed", "path=%s", o.ready_file);
    log_info("canaryd.ready", "url=%s://%s:%u/ api=/api/v1 pid=%d",
             cfg.http.tls_cert[0] != '\0' ? "https" : "http",
             strncmp(cfg.http.listen, "0.0.0.0", 7) == 0 ? "127.0.0.1" : "localhost",
             http_port(http), (int)getpid());

    struct argv_ref args = {argc, argv};
    models_set_config_source(pipeline_models(p), reread_config, &args);
    int sig = 0;
    for (;;) {
        sigwait(&set, &sig);
        if (sig != SIGHUP)
            break;
        log_info("canaryd.sighup", "action=reload_models");
        if (models_reload(pipeline_models(p), err, sizeof err) != 0)
            log_warn("canaryd.reload_failed", "error=\"%s\"", err); /* models_reload logged it */
        if (reload_auth(auth, &cfg, err, sizeof err) != 0)
            log_warn("canaryd.keyring_reload_failed", "error=\"%s\"", err);
    }
    log_info("canaryd.stopping", "signal=%d", sig);
    pthread_t forced;
    pthread_create(&forced, NULL, second_signal, &set);
    pthread_detach(forced);

    http_quiesce(http);
    mqtt_stop(mqtt); /* before the pipeline: what MQTT received is committed first */
    pipeline_stop(p);
    notifier_stop(notifier); /* after the writer: its last commits may add rows (and kicks) */
    unsigned left = http_drain(http, 3000);
    if (left > 0)
        log_warn("canaryd.requests_cut", "count=%u", left);
    http_stop(http);
    mqtt_free(mqtt);
    pipeline_free(p);
    auth_free(auth);
    log_info("canaryd.stopped", "signal=%d", sig);
    config_free(&cfg);
    return 0;
}
