/* broker_config.c — `canary broker-config`: a Mosquitto 2.x configuration, password file and
 * ACL that lock the broker down to canary's topic layout (docs/SECURITY.md, "Locking down
 * the broker").
 *
 * Each device gets a broker user named like the device, with a generated 256-bit password,
 * that may publish only to <prefix>/<id>/up, status (its will) and cmd/ack, and read only
 * <prefix>/<id>/cmd; canaryd's user reads <prefix>/# and sends commands. Anonymous clients
 * and unknown users get nothing.
 *
 * Promises: passwords are never printed or logged; they go only to the credentials file
 * (mode 0600) and, hashed as mosquitto_passwd does ($7$, PBKDF2-HMAC-SHA512), to the password
 * file (mode 0600). Every file is written whole and atomically (core/file_atomic.h), so a
 * broker reloading its configuration never sees half a file. Re-running keeps the passwords
 * of users already in the credentials file (add a device without re-flashing the others);
 * --rotate gives everyone new ones. Device ids are validated (broker_config.h) before any of
 * them reaches a file. */
#include "cli/broker_config.h"
#include "cli/cli_api.h"
#include "cli/cli_tls.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/file_atomic.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG         "canary broker-config"
#define PASSWORD_LEN 43 /* 32 random bytes, base64url without padding */
#define MAX_DEVICES  100000
#define CREDENTIALS  "credentials"

/* ---- the pure part (broker_config.h) ---- */

bool broker_config_id_valid(const char *id, size_t max_len)
{
    if (max_len == 0 || max_len > BROKER_ID_MAX)
        max_len = BROKER_ID_MAX;
    size_t n = 0;
    for (const char *p = id; *p != '\0'; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= max_len)
            return false;
    }
    return n > 0;
}

int broker_config_hash(const char *password, const unsigned char *salt, size_t salt_len,
                       int iterations, char *out, size_t outlen)
{
    if (password == NULL || salt == NULL || salt_len == 0 || salt_len > 64 || iterations < 1)
        return CANARY_EINVAL;
    unsigned char dk[64];
    /* Mosquitto's pw__hash(): PKCS5_PBKDF2_HMAC with SHA-512 and a 64-byte key. */
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
                          EVP_sha512(), (int)sizeof dk, dk) != 1)
        return CANARY_ENOMEM;
    char salt64[4 * ((64 + 2) / 3) + 1], dk64[4 * ((sizeof dk + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)salt64, salt, (int)salt_len);
    EVP_EncodeBlock((unsigned char *)dk64, dk, (int)sizeof dk);
    OPENSSL_cleanse(dk, sizeof dk);
    int w = snprintf(out, outlen, "$7$%d$%s$%s", iterations, salt64, dk64);
    return w > 0 && (size_t)w < outlen ? 0 : CANARY_EINVAL;
}

static bool level_valid(const char *s)
{
    return broker_config_id_valid(s, BROKER_ID_MAX);
}

int broker_config_acl(const struct broker_acl *acl, const char *const *devices, size_t n,
                      char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!level_valid(acl->prefix) || (acl->ha_discovery && !level_valid(acl->ha_prefix))) {
        canary_errf(err, errlen,
                    "topic prefix must be one topic level of letters, digits, "
                    "'.', '_' or '-'");
        return CANARY_EINVAL;
    }
    if (!level_valid(acl->canaryd_user)) {
        canary_errf(err, errlen,
                    "canaryd's user '%s' must be 1 to %d letters, digits, '.', '_' or '-'",
                    acl->canaryd_user, BROKER_ID_MAX);
        return CANARY_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!broker_config_id_valid(devices[i], acl->max_id_len)) {
            canary_errf(err, errlen,
                        "device id '%.80s' cannot be a broker user: use 1 to %zu letters, "
                        "digits, '.', '_' or '-' (no ':', '/', '+', '#' or spaces)",
                        devices[i], acl->max_id_len ? acl->max_id_len : (size_t)BROKER_ID_MAX);
            return CANARY_EINVAL;
        }
        if (strcmp(devices[i], acl->canaryd_user) == 0) {
            canary_errf(err, errlen, "device id '%s' is canaryd's broker user name", devices[i]);
            return CANARY_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(devices[i], devices[j]) == 0) {
                canary_errf(err, errlen, "device '%s' is listed twice", devices[i]);
                return CANARY_EINVAL;
            }
        }
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return CANARY_ENOMEM;
    const char *p = acl->prefix;
    fprintf(f,
            "# Mosquitto ACL written by `canary broker-config`; re-run it rather than edit.\n"
            "# Users not listed here (and anonymous clients) may neither publish nor subscribe.\n"
            "\n"
            "# canaryd: reads every device's topics, sends commands.\n"
            "user %s\n"
            "topic read %s/#\n"
            "topic write %s/+/cmd\n",
            acl->canaryd_user, p, p);
    if (acl->ha_discovery)
        fprintf(f,
                "# Home Assistant discovery: device states, configs, Home Assistant's status.\n"
                "topic write %s/+/state\n"
                "topic readwrite %s/#\n",
                p, acl->ha_prefix);
    for (size_t i = 0; i < n; i++) {
        const char *d = devices[i];
        fprintf(f,
                "\n# device %s: its readings, status (and will), command answers; its commands.\n"
                "user %s\n"
                "topic write %s/%s/up\n"
                "topic write %s/%s/status\n"
                "topic write %s/%s/cmd/ack\n"
                "topic read %s/%s/cmd\n",
                d, d, p, d, p, d, p, d, p, d);
    }
    if (fclose(f) != 0) {
        free(text);
        return CANARY_ENOMEM;
    }
    *out = text;
    return 0;
}

/* ---- the command ---- */

struct user {
    char name[BROKER_ID_MAX + 1];
    char password[PASSWORD_LEN + 1];
};

struct opts {
    const char *out_dir;
    const char *config;
    const char *devices_file;
    const char *api_url;
    const char *token_file;
    const char *ca; /* --ca or $CANARY_CA, for --from-api (cli_tls.h) */
    const char *canaryd_user;
    const char *bind;
    unsigned port;
    unsigned tls_port;
    const char *tls_cert, *tls_key, *tls_ca;
    bool no_plain;
    bool rotate;
    char **ids; /* from --device, the file and the API (owned) */
    size_t n_ids, cap_ids;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary broker-config --out-dir DIR [devices] [options]\n"
            "\n"
            "Writes a Mosquitto 2.x configuration that locks the broker down to canary's topics:\n"
            "each device may publish only to <prefix>/<id>/up, status and cmd/ack and read only\n"
            "<prefix>/<id>/cmd; canaryd's user reads <prefix>/# and sends commands; anonymous\n"
            "clients and unknown users can do nothing. <prefix> is canaryd's mqtt.topic_prefix.\n"
            "\n"
            "In DIR:\n"
            "  mosquitto.conf     listeners, allow_anonymous false, password_file, acl_file\n"
            "  passwd             hashed passwords, mosquitto_passwd's format (mode 0600)\n"
            "  acl                the rules above\n"
            "  credentials        '<user> <password>' per line, for provisioning (mode 0600)\n"
            "  canaryd.password   canaryd's password alone, for mqtt.password_file (mode 0600)\n"
            "Passwords are generated (256 bits) and never printed. Re-running keeps the\n"
            "passwords already in DIR/credentials; --rotate makes new ones for everyone.\n"
            "\n"
            "devices (at least one source; they add up):\n"
            "  --device ID            one device (repeatable)\n"
            "  --devices-file FILE    one device id per line; '#' starts a comment\n"
            "  --from-api URL         every device canaryd knows (GET URL/api/v1/devices), with\n"
            "                         the admin token from $CANARY_API_ADMIN_TOKEN or\n"
            "                         --admin-token-file F when set\n" CLI_TLS_USAGE "\n"
            "options:\n"
            "  --config FILE          canaryd's configuration (default $CANARY_CONFIG): topic\n"
            "                         prefix, Home Assistant discovery, canaryd's user name\n"
            "  --canaryd-user NAME    canaryd's broker user (default mqtt.username, else canaryd)\n"
            "  --port N               plain MQTT listener port (default 1883)\n"
            "  --bind ADDR            listen on this address only (default: all)\n"
            "  --tls-port N --tls-cert FILE --tls-key FILE [--tls-ca FILE]\n"
            "                         add a TLS listener (default port 8883); with --tls-ca,\n"
            "                         clients may also present certificates from that CA\n"
            "  --no-plain             no plain listener (TLS only)\n"
            "  --rotate               new passwords for every user\n"
            "\n"
            "Then: mosquitto -c DIR/mosquitto.conf (the broker's user must be able to read\n"
            "passwd: chown mosquitto DIR/passwd), and give canaryd mqtt.username and\n"
            "mqtt.password_file = DIR/canaryd.password. See docs/SECURITY.md.\n");
}

static int add_id(struct opts *o, const char *id, size_t len)
{
    if (o->n_ids >= MAX_DEVICES) {
        fprintf(stderr, "%s: more than %d devices\n", PROG, MAX_DEVICES);
        return 1;
    }
    if (len > BROKER_ID_MAX * 4)
        len = BROKER_ID_MAX * 4; /* long enough to be refused with a readable message */
    for (size_t i = 0; i < o->n_ids; i++) {
        if (strlen(o->ids[i]) == len && memcmp(o->ids[i], id, len) == 0)
            return 0; /* the same device from two sources */
    }
    if (o->n_ids == o->cap_ids) {
        size_t cap = o->cap_ids ? 2 * o->cap_ids : 16;
        char **grown = realloc(o->ids, cap * sizeof *grown);
        if (grown == NULL)
            return 1;
        o->ids = grown;
        o->cap_ids = cap;
    }
    o->ids[o->n_ids] = strndup(id, len);
    if (o->ids[o->n_ids] == NULL)
        return 1;
    o->n_ids++;
    return 0;
}

static int read_devices_file(struct opts *o)
{
    FILE *f = fopen(o->devices_file, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", PROG, o->devices_file, strerror(errno));
        return 1;
    }
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "#\r\n")] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n > 0)
            rc = add_id(o, s, n);
    }
    fclose(f);
    return rc;
}

/* GET <url>/api/v1/devices page by page (`next` is the last id of a full page). */
static int read_devices_api(struct opts *o)
{
    char admin[256] = "";
    if (o->token_file != NULL) {
        FILE *fp = fopen(o->token_file, "r");
        if (fp == NULL || fgets(admin, sizeof admin, fp) == NULL) {
            fprintf(stderr, "%s: cannot read --admin-token-file %s\n", PROG, o->token_file);
            if (fp != NULL)
                fclose(fp);
            return 1;
        }
        fclose(fp);
        admin[strcspn(admin, "\r\n")] = '\0';
    } else if (getenv("CANARY_API_ADMIN_TOKEN") != NULL) {
        snprintf(admin, sizeof admin, "%s", getenv("CANARY_API_ADMIN_TOKEN"));
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 0;
    char after[BROKER_ID_MAX * 4 + 1] = "";
    while (rc == 0) {
        char *esc = curl_easy_escape(NULL, after, 0);
        char path[2048];
        snprintf(path, sizeof path, "/api/v1/devices?limit=1000%s%s", after[0] ? "&after=" : "",
                 after[0] && esc ? esc : "");
        curl_free(esc);
        long status;
        cJSON *j = cli_api_call(PROG, o->api_url, admin, o->ca, "GET", path, NULL, 30, &status);
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "devices");
        if (status == 0 || status != 200 || !cJSON_IsArray(arr)) {
            if (status != 0) /* unreachable: cli_api_call said why */
                fprintf(stderr, "%s: %s%s: %s\n", PROG, o->api_url, path,
                        status != 200 ? "canaryd did not answer 200"
                                      : "no device list in the answer");
            cJSON_Delete(j);
            rc = 1;
            break;
        }
        cJSON *d;
        cJSON_ArrayForEach(d, arr)
        {
            cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
            if (cJSON_IsString(id) && rc == 0)
                rc = add_id(o, id->valuestring, strlen(id->valuestring));
        }
        cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "next");
        /* A `next` that does not move on would page forever. */
        bool more = cJSON_IsString(next) && next->valuestring[0] != '\0' &&
                    strlen(next->valuestring) < sizeof after &&
                    strcmp(next->valuestring, after) > 0;
        if (more)
            snprintf(after, sizeof after, "%s", next->valuestring);
        cJSON_Delete(j);
        if (!more)
            break;
    }
    OPENSSL_cleanse(admin, sizeof admin);
    curl_global_cleanup();
    return rc;
}

/* 32 random bytes as 43 base64url characters. */
static int new_password(char out[PASSWORD_LEN + 1])
{
    unsigned char raw[32];
    char b64[48];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return CANARY_EIO;
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    for (int i = 0; i < PASSWORD_LEN; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[PASSWORD_LEN] = '\0';
    OPENSSL_cleanse(b64, sizeof b64);
    return 0;
}

/* Passwords of users in an earlier DIR/credentials, reused unless --rotate. */
static void reuse_passwords(const char *path, struct user *users, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#')
            continue;
        char name[BROKER_ID_MAX + 2], pw[PASSWORD_LEN + 2];
        if (sscanf(line, "%65s %44s", name, pw) != 2 || strlen(pw) != PASSWORD_LEN)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(users[i].name, name) == 0)
                memcpy(users[i].password, pw, sizeof users[i].password);
        }
        OPENSSL_cleanse(pw, sizeof pw);
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
}

static int write_file(const char *dir, const char *name, const char *text, size_t len, mode_t mode)
{
    char path[PATH_MAX], err[PATH_MAX + 256];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "%s: %s/%s: path too long\n", PROG, dir, name);
        return 1;
    }
    if (file_write_atomic(path, text, len, mode, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    return 0;
}

/* Frees a memstream text that may hold secrets. */
static void free_secret(char *text, size_t len)
{
    if (text != NULL)
        OPENSSL_cleanse(text, len);
    free(text);
}

static int generate(struct opts *o, const struct canary_config *cfg)
{
    const char *canaryd = o->canaryd_user         ? o->canaryd_user
                          : cfg->mqtt.username[0] ? cfg->mqtt.username
                                                  : "canaryd";
    struct broker_acl acl = {.prefix = cfg->mqtt.topic_prefix,
                             .canaryd_user = canaryd,
                             .ha_discovery = cfg->mqtt.ha_discovery,
                             .ha_prefix = cfg->mqtt.ha_prefix,
                             .max_id_len = cfg->ingest.max_device_len < BROKER_ID_MAX
                                               ? cfg->ingest.max_device_len
                                               : BROKER_ID_MAX};
    char *acl_text = NULL, err[512] = "out of memory";
    int arc =
        broker_config_acl(&acl, (const char *const *)o->ids, o->n_ids, &acl_text, err, sizeof err);
    if (arc != 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return arc == CANARY_EINVAL ? 2 : 1;
    }
    char dir[PATH_MAX];
    if (realpath(o->out_dir, dir) == NULL) {
        fprintf(stderr, "%s: --out-dir %s: %s\n", PROG, o->out_dir, strerror(errno));
        free(acl_text);
        return 1;
    }
    if (strpbrk(dir, "\r\n") != NULL) { /* it goes into mosquitto.conf lines */
        fprintf(stderr, "%s: --out-dir must not contain a line break\n", PROG);
        free(acl_text);
        return 2;
    }

    /* Users: canaryd first, then the devices; passwords reused or new. */
    size_t n = o->n_ids + 1;
    struct user *users = calloc(n, sizeof *users);
    int rc = users == NULL ? 1 : 0;
    if (rc == 0) {
        snprintf(users[0].name, sizeof users[0].name, "%.*s", BROKER_ID_MAX, canaryd);
        for (size_t i = 0; i < o->n_ids; i++)
            snprintf(users[i + 1].name, sizeof users[i + 1].name, "%s", o->ids[i]);
        char cred_path[PATH_MAX + 32];
        snprintf(cred_path, sizeof cred_path, "%s/%s", dir, CREDENTIALS);
        if (!o->rotate)
            reuse_passwords(cred_path, users, n);
    }
    size_t reused = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (users[i].password[0] != '\0')
            reused++;
        else if (new_password(users[i].password) != 0)
            rc = 1;
    }

    char *pw_text = NULL, *cred_text = NULL, *conf_text = NULL;
    size_t pw_len = 0, cred_len = 0, conf_len = 0;
    FILE *pw = rc == 0 ? open_memstream(&pw_text, &pw_len) : NULL;
    FILE *cred = rc == 0 ? open_memstream(&cred_text, &cred_len) : NULL;
    FILE *conf = rc == 0 ? open_memstream(&conf_text, &conf_len) : NULL;
    if (pw == NULL || cred == NULL || conf == NULL)
        rc = 1;
    if (rc == 0) {
        fprintf(cred, "# Broker passwords written by `canary broker-config`: one '<user> "
                      "<password>' per line.\n# Secret: give each device only its own line.\n");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char salt[BROKER_SALT_LEN];
        char hash[BROKER_HASH_TEXT_MAX];
        if (RAND_bytes(salt, sizeof salt) != 1 ||
            broker_config_hash(users[i].password, salt, sizeof salt, BROKER_HASH_ITER, hash,
                               sizeof hash) != 0) {
            fprintf(stderr, "%s: could not hash a password\n", PROG);
            rc = 1;
            break;
        }
        fprintf(pw, "%s:%s\n", users[i].name, hash);
        fprintf(cred, "%s %s\n", users[i].name, users[i].password);
    }
    if (rc == 0) {
        fprintf(conf,
                "# Mosquitto 2.x configuration written by `canary broker-config`.\n"
                "# Every client must log in; the ACL limits each device to its own topics.\n"
                "per_listener_settings false\n"
                "allow_anonymous false\n"
                "password_file %s/passwd\n"
                "acl_file %s/acl\n",
                dir, dir);
        if (!o->no_plain)
            fprintf(conf, "\nlistener %u%s%s\n", o->port, o->bind ? " " : "",
                    o->bind ? o->bind : "");
        if (o->tls_cert != NULL) {
            fprintf(conf, "\nlistener %u%s%s\ncertfile %s\nkeyfile %s\n", o->tls_port,
                    o->bind ? " " : "", o->bind ? o->bind : "", o->tls_cert, o->tls_key);
            if (o->tls_ca != NULL)
                fprintf(conf, "cafile %s\nrequire_certificate false\n", o->tls_ca);
        }
    }
    /* fclose before reading the texts: the memstream buffers are final only then. */
    if (pw != NULL && fclose(pw) != 0)
        rc = 1;
    if (cred != NULL && fclose(cred) != 0)
        rc = 1;
    if (conf != NULL && fclose(conf) != 0)
        rc = 1;
    if (rc == 0) {
        /* Secrets first: a configuration never points at a password file that lacks users. */
        char cpw[PASSWORD_LEN + 2];
        snprintf(cpw, sizeof cpw, "%s\n", users[0].password);
        rc = write_file(dir, CREDENTIALS, cred_text, cred_len, 0600) ||
             write_file(dir, "canaryd.password", cpw, strlen(cpw), 0600) ||
             write_file(dir, "passwd", pw_text, pw_len, 0600) ||
             write_file(dir, "acl", acl_text, strlen(acl_text), 0644) ||
             write_file(dir, "mosquitto.conf", conf_text, conf_len, 0644);
        OPENSSL_cleanse(cpw, sizeof cpw);
    }
    if (rc == 0)
        printf("%s/mosquitto.conf: canaryd user '%s' and %zu device%s on topic prefix '%s'%s; "
               "%zu password%s kept, %zu new (in %s/%s, mode 0600)\n",
               dir, canaryd, o->n_ids, o->n_ids == 1 ? "" : "s", acl.prefix,
               acl.ha_discovery ? " with Home Assistant discovery" : "", reused,
               reused == 1 ? "" : "s", n - reused, dir, CREDENTIALS);
    free_secret(pw_text, pw_len);
    free_secret(cred_text, cred_len);
    free(conf_text);
    free(acl_text);
    if (users != NULL)
        OPENSSL_cleanse(users, n * sizeof *users);
    free(users);
    return rc;
}

static bool parse_port(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long p = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
        return false;
    *out = (unsigned)p;
    return true;
}

int cmd_broker_config(int argc, char **argv)
{
    struct opts o = {.port = 1883, .tls_port = 8883};
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            goto out;
        }
        if (!strcmp(a, "--no-plain")) {
            o.no_plain = true;
            continue;
        }
        if (!strcmp(a, "--rotate")) {
            o.rotate = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL || a[0] != '-') {
            fprintf(stderr, "%s: %s '%s' (see --help)\n", PROG,
                    a[0] == '-' ? "missing value for" : "unexpected argument", a);
            rc = 2;
            break;
        }
        i++;
        if (!strcmp(a, "--out-dir"))
            o.out_dir = v;
        else if (!strcmp(a, "--device"))
            rc = add_id(&o, v, strlen(v));
        else if (!strcmp(a, "--devices-file"))
            o.devices_file = v;
        else if (!strcmp(a, "--from-api"))
            o.api_url = v;
        else if (!strcmp(a, "--admin-token-file"))
            o.token_file = v;
        else if (!strcmp(a, "--ca"))
            o.ca = v;
        else if (!strcmp(a, "--config"))
            o.config = v;
        else if (!strcmp(a, "--canaryd-user"))
            o.canaryd_user = v;
        else if (!strcmp(a, "--bind"))
            o.bind = v;
        else if (!strcmp(a, "--tls-cert"))
            o.tls_cert = v;
        else if (!strcmp(a, "--tls-key"))
            o.tls_key = v;
        else if (!strcmp(a, "--tls-ca"))
            o.tls_ca = v;
        else if (!strcmp(a, "--port") || !strcmp(a, "--tls-port")) {
            if (!parse_port(v, !strcmp(a, "--port") ? &o.port : &o.tls_port)) {
                fprintf(stderr, "%s: %s takes a port, 1 to 65535\n", PROG, a);
                rc = 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", PROG, a);
            rc = 2;
        }
    }
    if (rc != 0)
        goto out;
    if (o.out_dir == NULL) {
        fprintf(stderr, "%s: where to? --out-dir DIR (see --help)\n", PROG);
        rc = 2;
        goto out;
    }
    if ((o.tls_cert == NULL) != (o.tls_key == NULL) || (o.tls_ca != NULL && !o.tls_cert)) {
        fprintf(stderr, "%s: a TLS listener needs both --tls-cert and --tls-key\n", PROG);
        rc = 2;
        goto out;
    }
    if (o.no_plain && o.tls_cert == NULL) {
        fprintf(stderr, "%s: --no-plain leaves no listener without --tls-cert/--tls-key\n", PROG);
        rc = 2;
        goto out;
    }
    if (o.bind != NULL && strpbrk(o.bind, " \t\r\n") != NULL) {
        fprintf(stderr, "%s: --bind takes one address\n", PROG);
        rc = 2;
        goto out;
    }
    const char *paths[] = {o.tls_cert, o.tls_key, o.tls_ca};
    for (size_t i = 0; i < 3; i++) {
        if (paths[i] != NULL && strpbrk(paths[i], "\r\n") != NULL) {
            fprintf(stderr, "%s: a file name cannot contain a line break\n", PROG);
            rc = 2;
            goto out;
        }
    }
    if (o.devices_file != NULL && (rc = read_devices_file(&o)) != 0)
        goto out;
    o.ca = cli_tls_ca(o.ca);
    if (o.api_url != NULL && !cli_tls_check_ca(PROG, o.ca)) {
        rc = 2;
        goto out;
    }
    if (o.api_url != NULL && (rc = read_devices_api(&o)) != 0)
        goto out;
    if (o.n_ids == 0 && o.devices_file == NULL && o.api_url == NULL) {
        fprintf(stderr,
                "%s: which devices? --device ID, --devices-file FILE or --from-api URL "
                "(see --help)\n",
                PROG);
        rc = 2;
        goto out;
    }

    struct canary_config cfg;
    char err[1024];
    config_init(&cfg);
    const char *path = o.config ? o.config : getenv("CANARY_CONFIG");
    if ((path != NULL && path[0] != '\0' && config_load_file(&cfg, path, err, sizeof err) != 0) ||
        config_load_env(&cfg, err, sizeof err) != 0 ||
        config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: configuration: %s\n", PROG, err);
        rc = 2;
    } else {
        rc = generate(&o, &cfg);
    }
    config_free(&cfg);
out:
    for (size_t i = 0; i < o.n_ids; i++)
        free(o.ids[i]);
    free(o.ids);
    return rc;
}
