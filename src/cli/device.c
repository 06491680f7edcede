/* device.c — `canary device add|list|show|rotate-key|revoke`: provisioning device
 * credentials through canaryd's REST API (docs/SECURITY.md).
 *
 * Every call goes to canaryd (never to the database), with the admin token from
 * $CANARY_API_ADMIN_TOKEN or --admin-token-file (a flag value would show in `ps`). A new key
 * or token is printed once, on stdout, as "key: <43 characters>" or "token: cnt_..."; with
 * --keys-out FILE it is also appended to FILE (created with mode 0600) as "<device> <key>",
 * the format `canary simulate --sign` reads. Nothing here logs or stores a secret
 * otherwise. */
#include "cli/cli_tls.h"
#include "cli/commands.h"

#include "cli/cli_api.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dev_opts {
    const char *url;
    const char *token_file;
    const char *keys_out;
    const char *name, *location;
    bool token;      /* a bearer token instead of an HMAC key */
    long overlap_s;  /* rotate-key: -1 = canaryd's default */
    char admin[256]; /* the admin token */
    const char *ca;  /* --ca or $CANARY_CA: canaryd's CA (cli_tls.h); NULL = system store */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary device <command> [options]\n"
            "\n"
            "  add ID [--name N] [--location L] [--token] [--keys-out FILE]\n"
            "                    register device ID (if new) and give it a key (or, with --token,\n"
            "                    an HTTP bearer token); the secret is printed once\n"
            "  list              devices and their credentials\n"
            "  show ID           one device's credentials (versions and states, no secrets)\n"
            "  release ID        end ID's quarantine (tamper checks, docs/TAMPER.md) as $USER\n"
            "  rotate-key ID [--overlap S] [--token] [--keys-out FILE]\n"
            "                    a new key; the old one stays valid S seconds (default\n"
            "                    security.key_overlap_s)\n"
            "  revoke ID         revoke every credential of ID: its messages are refused\n"
            "\n"
            "options:\n"
            "  --url URL               canaryd's base URL (default http://127.0.0.1:8080)\n"
            "  --admin-token-file F    file holding api.admin_token (default:\n"
            "                          $CANARY_API_ADMIN_TOKEN)\n" CLI_TLS_USAGE);
}

/* One request (cli/cli_api.h): the parsed answer (NULL when not JSON) and *status (0 when
 * canaryd could not be reached, with a message on stderr). */
static cJSON *call(const struct dev_opts *o, const char *method, const char *path, const char *body,
                   long *status)
{
    return cli_api_call("canary device", o->url, o->admin, o->ca, method, path, body, 10, status);
}

/* Prints canaryd's error answer. Returns 1. */
static int fail(const char *what, long status, const cJSON *j)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (status != 0)
        fprintf(stderr, "canary device: %s: canaryd answered %ld %s: %s\n", what, status,
                cJSON_IsString(code) ? code->valuestring : "",
                cJSON_IsString(m) ? m->valuestring : "(no message)");
    return 1;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int write_keys_out(const char *path, const char *device, const char *secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "canary device: --keys-out %s: cannot open it\n", path);
        return 1;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s %s\n", device, secret);
    bool ok = n > 0 && write(fd, line, (size_t)n) == n;
    memset(line, 0, sizeof line);
    close(fd);
    if (!ok)
        fprintf(stderr, "canary device: --keys-out %s: write failed\n", path);
    return ok ? 0 : 1;
}

/* POST /devices/{id}/keys and print the secret. */
static int new_key(const struct dev_opts *o, const char *id, bool rotation)
{
    char path[300], body[128];
    snprintf(path, sizeof path, "/api/v1/devices/%s/keys", id);
    if (o->overlap_s >= 0)
        snprintf(body, sizeof body, "{\"kind\":\"%s\",\"overlap_s\":%ld}",
                 o->token ? "token" : "hmac", o->overlap_s);
    else
        snprintf(body, sizeof body, "{\"kind\":\"%s\"}", o->token ? "token" : "hmac");
    long status;
    cJSON *j = call(o, "POST", path, body, &status);
    if (status != 201) {
        int rc = fail(rotation ? "rotate-key" : "add (key)", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const char *secret = str(j, o->token ? "token" : "key");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(j, "previous_valid_until_ms");
    printf("device %s: %s version %d%s\n", id, o->token ? "token" : "key",
           cJSON_IsNumber(v) ? v->valueint : 0,
           cJSON_IsNumber(until) ? " (the previous one stays valid during the overlap)" : "");
    printf("%s: %s\n", o->token ? "token" : "key", secret);
    fprintf(stderr, "This secret is shown once: put it on the device now.\n");
    int rc = o->keys_out != NULL ? write_keys_out(o->keys_out, id, secret) : 0;
    cJSON_Delete(j);
    return rc;
}

static int cmd_add(const struct dev_opts *o, const char *id)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "id", id);
    if (o->name != NULL)
        cJSON_AddStringToObject(req, "name", o->name);
    if (o->location != NULL)
        cJSON_AddStringToObject(req, "location", o->location);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    long status;
    cJSON *j = call(o, "POST", "/api/v1/devices", body, &status);
    free(body);
    if (status != 201 && status != 409) {
        int rc = fail("add", status, j);
        cJSON_Delete(j);
        return rc;
    }
    cJSON_Delete(j);
    if (status == 409)
        fprintf(stderr, "canary device: %s is already registered; giving it a new credential\n",
                id);
    return new_key(o, id, false);
}

static void print_keys(const cJSON *keys)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(k, "version");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(k, "expires_ms");
        printf("  %-5s v%-3d %-8s", str(k, "kind"), cJSON_IsNumber(v) ? v->valueint : 0,
               str(k, "state"));
        if (cJSON_IsNumber(exp))
            printf(" valid until %.0f (Unix ms)", exp->valuedouble);
        printf("\n");
    }
}

static int cmd_show(const struct dev_opts *o, const char *id)
{
    char path[300];
    snprintf(path, sizeof path, "/api/v1/devices/%s/keys", id);
    long status;
    cJSON *j = call(o, "GET", path, NULL, &status);
    if (status != 200) {
        int rc = fail("show", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
    printf("%s: %d credential%s\n", id, cJSON_GetArraySize(keys),
           cJSON_GetArraySize(keys) == 1 ? "" : "s");
    print_keys(keys);
    cJSON_Delete(j);
    return 0;
}

static int cmd_list(const struct dev_opts *o)
{
    long status;
    cJSON *j = call(o, "GET", "/api/v1/devices?limit=1000", NULL, &status);
    if (status != 200) {
        int rc = fail("list", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *devices = cJSON_GetObjectItemCaseSensitive(j, "devices");
    if (!cJSON_IsArray(devices))
        devices = j;
    const cJSON *d;
    int rc = 0;
    cJSON_ArrayForEach(d, devices)
    {
        const char *id = str(d, "id");
        if (id[0] != '\0' && cmd_show(o, id) != 0)
            rc = 1;
    }
    cJSON_Delete(j);
    return rc;
}

static int cmd_revoke(const struct dev_opts *o, const char *id)
{
    char path[300];
    snprintf(path, sizeof path, "/api/v1/devices/%s/revoke", id);
    long status;
    cJSON *j = call(o, "POST", path, "{}", &status);
    if (status != 200) {
        int rc = fail("revoke", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "revoked");
    printf("device %s: %d credential%s revoked\n", id, cJSON_IsNumber(n) ? n->valueint : 0,
           cJSON_IsNumber(n) && n->valueint == 1 ? "" : "s");
    cJSON_Delete(j);
    return 0;
}

/* POST /api/v1/devices/<id>/release as $USER (the actor recorded with the event). */
static int cmd_release(const struct dev_opts *o, const char *id)
{
    char path[300], body[200];
    snprintf(path, sizeof path, "/api/v1/devices/%s/release", id);
    const char *user = getenv("USER");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "by", user != NULL && user[0] ? user : "cli");
    char *text = cJSON_PrintUnformatted(b);
    snprintf(body, sizeof body, "%s", text != NULL ? text : "{}");
    cJSON_free(text);
    cJSON_Delete(b);
    long status;
    cJSON *j = call(o, "POST", path, body, &status);
    if (status != 200) {
        int rc = fail("release", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *trust = cJSON_GetObjectItemCaseSensitive(j, "trust");
    printf("device %s released: trust %s\n", id, str(trust, "state"));
    cJSON_Delete(j);
    return 0;
}

static int read_admin_token(struct dev_opts *o)
{
    if (o->token_file != NULL) {
        FILE *fp = fopen(o->token_file, "r");
        if (fp == NULL || fgets(o->admin, sizeof o->admin, fp) == NULL) {
            fprintf(stderr, "canary device: cannot read --admin-token-file %s\n", o->token_file);
            if (fp != NULL)
                fclose(fp);
            return 2;
        }
        fclose(fp);
        o->admin[strcspn(o->admin, "\r\n")] = '\0';
    } else if (getenv("CANARY_API_ADMIN_TOKEN") != NULL) {
        snprintf(o->admin, sizeof o->admin, "%s", getenv("CANARY_API_ADMIN_TOKEN"));
    }
    return 0;
}

int cmd_device(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    struct dev_opts o = {.url = "http://127.0.0.1:8080", .overlap_s = -1};
    const char *id = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--token")) {
            o.token = true;
            continue;
        }
        if (a[0] != '-') {
            if (id != NULL) {
                fprintf(stderr, "canary device: unexpected argument '%s'\n", a);
                return 2;
            }
            id = a;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "canary device: %s needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--url"))
            o.url = val;
        else if (!strcmp(a, "--admin-token-file"))
            o.token_file = val;
        else if (!strcmp(a, "--ca"))
            o.ca = val;
        else if (!strcmp(a, "--keys-out"))
            o.keys_out = val;
        else if (!strcmp(a, "--name"))
            o.name = val;
        else if (!strcmp(a, "--location"))
            o.location = val;
        else if (!strcmp(a, "--overlap")) {
            char *end;
            o.overlap_s = strtol(val, &end, 10);
            if (*end != '\0' || o.overlap_s < 0 || o.overlap_s > 31536000) {
                fprintf(stderr, "canary device: --overlap takes seconds, 0 to 31536000\n");
                return 2;
            }
        } else {
            fprintf(stderr, "canary device: unknown option '%s'\n", a);
            return 2;
        }
    }
    int rc = read_admin_token(&o);
    if (rc != 0)
        return rc;
    o.ca = cli_tls_ca(o.ca);
    if (!cli_tls_check_ca("canary device", o.ca))
        return 2;
    bool needs_id = strcmp(sub, "list") != 0;
    if (needs_id && id == NULL) {
        fprintf(stderr, "canary device %s: which device? (canary device --help)\n", sub);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(sub, "add"))
        rc = cmd_add(&o, id);
    else if (!strcmp(sub, "rotate-key"))
        rc = new_key(&o, id, true);
    else if (!strcmp(sub, "show"))
        rc = cmd_show(&o, id);
    else if (!strcmp(sub, "list"))
        rc = cmd_list(&o);
    else if (!strcmp(sub, "revoke"))
        rc = cmd_revoke(&o, id);
    else if (!strcmp(sub, "release"))
        rc = cmd_release(&o, id);
    else {
        fprintf(stderr, "canary device: unknown command '%s'\n\n", sub);
        usage(stderr);
        rc = 2;
    }
    memset(o.admin, 0, sizeof o.admin);
    curl_global_cleanup();
    return rc;
}
