/* user.c — `canary user add|list|passwd|disable|enable|remove` and `canary token
 * create|list|revoke`: who may use canaryd's API and dashboard, managed through its REST API
 * (docs/ACCESS.md).
 *
 * Every call goes to canaryd, never to the database, with an admin credential from the
 * environment ($CANARY_API_TOKEN: an admin API token; else $CANARY_API_ADMIN_TOKEN) or a file
 * (--token-file F), never from an argument (it would show in `ps`). The first admin of a
 * fresh install is made with api.admin_token, the bootstrap credential:
 *     CANARY_API_ADMIN_TOKEN=... canary user add alice --role admin
 * A password comes from --password-file F or, with --password-stdin, the first line of
 * standard input; without either, canaryd (add) or this tool (passwd) generates one and it
 * is printed once. A new API token is printed once too. Nothing here logs a secret, and the
 * buffers that held one are wiped. */
#include "access/password.h"
#include "cli/cli_api.h"
#include "cli/cli_tls.h"
#include "cli/commands.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct user_opts {
    const char *prog; /* "canary user" / "canary token" */
    const char *url;
    const char *token_file;
    const char *password_file;
    const char *cacert;
    bool password_stdin;
    const char *role;
    long expires_s; /* token create: 0 = never */
    char cred[512]; /* the admin credential */
};

static void usage_user(FILE *out)
{
    fprintf(out,
            "usage: canary user <command> [options]\n"
            "\n"
            "  add NAME --role admin|operator|viewer [--password-file F | --password-stdin]\n"
            "                    a new user; without a password canaryd makes one, printed once\n"
            "  list              users, roles and states\n"
            "  passwd NAME [--password-file F | --password-stdin]\n"
            "                    a new password (generated and printed once without one); ends\n"
            "                    the user's dashboard sessions\n"
            "  role NAME --role R   change a user's role\n"
            "  disable NAME      the user can no longer log in; their sessions end\n"
            "  enable NAME       undo disable\n"
            "  remove NAME       remove the user\n"
            "\n"
            "options:\n"
            "  --url URL          canaryd's base URL (default http://127.0.0.1:8080)\n"
            "  --token-file F     file holding an admin credential (default: $CANARY_API_TOKEN,\n"
            "                     else $CANARY_API_ADMIN_TOKEN, the bootstrap api.admin_token)\n"
            "  --ca F, --cacert F CA certificate to trust for an https:// URL (default\n"
            "                     $CANARY_CA, else the system's CA store)\n");
}

static void usage_token(FILE *out)
{
    fprintf(out,
            "usage: canary token <command> [options]\n"
            "\n"
            "  create NAME --role admin|operator|viewer [--expires S]\n"
            "                    a new API token, printed once (cnu_...); S seconds of validity\n"
            "  list              tokens, roles, states and last use (never the secret)\n"
            "  revoke ID         the token stops working at once\n"
            "\n"
            "options: --url URL, --token-file F, --cacert F as for `canary user`\n");
}

/* One request (cli/cli_api.h): the parsed answer (NULL when not JSON) and *status (0 when
 * canaryd could not be reached, with a message on stderr). body (may be NULL) is wiped after:
 * it may hold a password. */
static cJSON *call(const struct user_opts *o, const char *method, const char *path, char *body,
                   long *status)
{
    cJSON *j = cli_api_call(o->prog, o->url, o->cred, o->cacert, method, path, body, 30, status);
    if (body != NULL)
        OPENSSL_cleanse(body, strlen(body));
    return j;
}

/* Prints canaryd's error answer. Returns 1. */
static int fail(const struct user_opts *o, const char *what, long status, const cJSON *j)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (status != 0)
        fprintf(stderr, "%s: %s: canaryd answered %ld %s: %s\n", o->prog, what, status,
                cJSON_IsString(code) ? code->valuestring : "",
                cJSON_IsString(m) ? m->valuestring : "(no message)");
    return 1;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Reads the first line of a file (or stdin for "-") into out. Returns 0 or 2. */
static int read_line(const char *prog, const char *path, char *out, size_t cap)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (fp == NULL || fgets(out, (int)cap, fp) == NULL) {
        fprintf(stderr, "%s: cannot read %s\n", prog,
                strcmp(path, "-") == 0 ? "a line from standard input" : path);
        if (fp != NULL && fp != stdin)
            fclose(fp);
        return 2;
    }
    if (fp != stdin)
        fclose(fp);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int read_credential(struct user_opts *o)
{
    if (o->token_file != NULL)
        return read_line(o->prog, o->token_file, o->cred, sizeof o->cred);
    const char *env = getenv("CANARY_API_TOKEN");
    if (env == NULL || env[0] == '\0')
        env = getenv("CANARY_API_ADMIN_TOKEN");
    snprintf(o->cred, sizeof o->cred, "%s", env != NULL ? env : "");
    return 0;
}

/* The password given by --password-file / --password-stdin into out ("" when none). */
static int given_password(const struct user_opts *o, char *out, size_t cap)
{
    out[0] = '\0';
    if (o->password_file != NULL)
        return read_line(o->prog, o->password_file, out, cap);
    if (o->password_stdin)
        return read_line(o->prog, "-", out, cap);
    return 0;
}

/* Prints a body of canaryd's, wiping secrets from the JSON before it is freed. */
static void wipe_json_string(cJSON *j, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsString(v))
        OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
}

static char *body_of(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "password");
    if (cJSON_IsString(pw))
        OPENSSL_cleanse(pw->valuestring, strlen(pw->valuestring));
    cJSON_Delete(o);
    return s;
}

static int user_add(const struct user_opts *o, const char *name)
{
    if (o->role == NULL) {
        fprintf(stderr, "%s add: --role admin|operator|viewer is required\n", o->prog);
        return 2;
    }
    char pw[PASSWORD_MAX_LEN + 2];
    int rc = given_password(o, pw, sizeof pw);
    if (rc != 0)
        return rc;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddStringToObject(b, "role", o->role);
    if (pw[0] != '\0')
        cJSON_AddStringToObject(b, "password", pw);
    OPENSSL_cleanse(pw, sizeof pw);
    char *body = body_of(b);
    long status;
    cJSON *j = call(o, "POST", "/api/v1/users", body, &status);
    free(body);
    if (status != 201) {
        rc = fail(o, "add", status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("user %s: role %s\n", str(j, "name"), str(j, "role"));
    if (str(j, "password")[0] != '\0') {
        printf("password: %s\n", str(j, "password"));
        fprintf(stderr, "This password is shown once: give it to %s now.\n", name);
    }
    wipe_json_string(j, "password");
    cJSON_Delete(j);
    return 0;
}

static int user_list(const struct user_opts *o)
{
    long status;
    cJSON *j = call(o, "GET", "/api/v1/users", NULL, &status);
    if (status != 200) {
        int rc = fail(o, "list", status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("%-24s %-9s %s\n", "NAME", "ROLE", "STATE");
    const cJSON *u;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(j, "users"))
    {
        printf("%-24s %-9s %s\n", str(u, "name"), str(u, "role"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "disabled")) ? "disabled"
                                                                             : "enabled");
    }
    cJSON_Delete(j);
    return 0;
}

/* PATCH /api/v1/users/<name> with body (consumed). */
static int user_patch(const struct user_opts *o, const char *name, cJSON *b, const char *what)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/users/%s", name);
    char *body = body_of(b);
    long status;
    cJSON *j = call(o, "PATCH", path, body, &status);
    free(body);
    if (status != 200) {
        int rc = fail(o, what, status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("user %s: role %s, %s%s\n", str(j, "name"), str(j, "role"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "disabled")) ? "disabled" : "enabled",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "sessions_ended"))
               ? "; their sessions ended"
               : "");
    cJSON_Delete(j);
    return 0;
}

static int user_passwd(const struct user_opts *o, const char *name)
{
    char pw[PASSWORD_MAX_LEN + 2];
    int rc = given_password(o, pw, sizeof pw);
    if (rc != 0)
        return rc;
    bool generated = pw[0] == '\0';
    if (generated && password_generate(pw, sizeof pw, 20) != 0) {
        fprintf(stderr, "%s passwd: no randomness\n", o->prog);
        return 1;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "password", pw);
    rc = user_patch(o, name, b, "passwd");
    if (rc == 0 && generated) {
        printf("password: %s\n", pw);
        fprintf(stderr, "This password is shown once: give it to %s now.\n", name);
    }
    OPENSSL_cleanse(pw, sizeof pw);
    return rc;
}

static int user_remove(const struct user_opts *o, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/users/%s", name);
    long status;
    cJSON *j = call(o, "DELETE", path, NULL, &status);
    if (status != 200) {
        int rc = fail(o, "remove", status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("user %s removed\n", name);
    cJSON_Delete(j);
    return 0;
}

static int token_create(const struct user_opts *o, const char *name)
{
    if (o->role == NULL) {
        fprintf(stderr, "%s create: --role admin|operator|viewer is required\n", o->prog);
        return 2;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddStringToObject(b, "role", o->role);
    if (o->expires_s > 0)
        cJSON_AddNumberToObject(b, "expires_in_s", (double)o->expires_s);
    char *body = body_of(b);
    long status;
    cJSON *j = call(o, "POST", "/api/v1/tokens", body, &status);
    free(body);
    if (status != 201) {
        int rc = fail(o, "create", status, j);
        cJSON_Delete(j);
        return rc;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    printf("token %d (%s): role %s\n", cJSON_IsNumber(id) ? id->valueint : 0, str(j, "name"),
           str(j, "role"));
    printf("token: %s\n", str(j, "token"));
    fprintf(stderr, "This token is shown once: store it where its user can read it (mode "
                    "0600), never in a command line.\n");
    wipe_json_string(j, "token");
    cJSON_Delete(j);
    return 0;
}

static int token_list(const struct user_opts *o)
{
    long status;
    cJSON *j = call(o, "GET", "/api/v1/tokens", NULL, &status);
    if (status != 200) {
        int rc = fail(o, "list", status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("%-5s %-20s %-9s %-8s %-16s %s\n", "ID", "NAME", "ROLE", "STATE", "CREATED BY",
           "LAST USED (ms)");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "tokens"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        const cJSON *used = cJSON_GetObjectItemCaseSensitive(t, "last_used_ms");
        char last[32] = "never";
        if (cJSON_IsNumber(used))
            snprintf(last, sizeof last, "%.0f", used->valuedouble);
        printf("%-5d %-20s %-9s %-8s %-16s %s\n", cJSON_IsNumber(id) ? id->valueint : 0,
               str(t, "name"), str(t, "role"), str(t, "state"), str(t, "created_by"), last);
    }
    cJSON_Delete(j);
    return 0;
}

static int token_revoke(const struct user_opts *o, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/tokens/%s", id);
    long status;
    cJSON *j = call(o, "DELETE", path, NULL, &status);
    if (status != 200) {
        int rc = fail(o, "revoke", status, j);
        cJSON_Delete(j);
        return rc;
    }
    printf("token %s revoked\n", id);
    cJSON_Delete(j);
    return 0;
}

/* Parses the options after the subcommand; *arg receives the one positional argument. */
static int parse(struct user_opts *o, int argc, char **argv, const char **arg)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--password-stdin")) {
            o->password_stdin = true;
            continue;
        }
        if (a[0] != '-') {
            if (*arg != NULL) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", o->prog, a);
                return 2;
            }
            *arg = a;
            continue;
        }
        if (!strcmp(a, "--password")) {
            fprintf(stderr,
                    "%s: a password on the command line would show in `ps` and the shell "
                    "history: use --password-file F or --password-stdin\n",
                    o->prog);
            return 2;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            fprintf(stderr, "%s: %s needs a value (or is unknown)\n", o->prog, a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--url"))
            o->url = val;
        else if (!strcmp(a, "--token-file") || !strcmp(a, "--admin-token-file"))
            o->token_file = val;
        else if (!strcmp(a, "--password-file"))
            o->password_file = val;
        else if (!strcmp(a, "--cacert") || !strcmp(a, "--ca"))
            o->cacert = val;
        else if (!strcmp(a, "--role"))
            o->role = val;
        else if (!strcmp(a, "--expires")) {
            char *end;
            o->expires_s = strtol(val, &end, 10);
            if (*end != '\0' || o->expires_s < 1 || o->expires_s > 316000000) {
                fprintf(stderr, "%s: --expires takes seconds, 1 to 316000000\n", o->prog);
                return 2;
            }
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", o->prog, a);
            return 2;
        }
    }
    o->cacert = cli_tls_ca(o->cacert); /* --ca, else $CANARY_CA (cli_tls.h) */
    if (!cli_tls_check_ca(o->prog, o->cacert))
        return 2;
    return read_credential(o);
}

static int run(struct user_opts *o, int (*fn)(const struct user_opts *, const char *),
               const char *arg, bool needs_arg, const char *what)
{
    if (needs_arg && arg == NULL) {
        fprintf(stderr, "%s %s: which one? (%s --help)\n", o->prog, what, o->prog);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = fn(o, arg);
    curl_global_cleanup();
    return rc;
}

static int list_users(const struct user_opts *o, const char *unused)
{
    (void)unused;
    return user_list(o);
}

static int list_tokens(const struct user_opts *o, const char *unused)
{
    (void)unused;
    return token_list(o);
}

static int disable_user(const struct user_opts *o, const char *name)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddBoolToObject(b, "disabled", true);
    return user_patch(o, name, b, "disable");
}

static int enable_user(const struct user_opts *o, const char *name)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddBoolToObject(b, "disabled", false);
    return user_patch(o, name, b, "enable");
}

static int role_user(const struct user_opts *o, const char *name)
{
    if (o->role == NULL) {
        fprintf(stderr, "%s role: --role admin|operator|viewer is required\n", o->prog);
        return 2;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "role", o->role);
    return user_patch(o, name, b, "role");
}

int cmd_user(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage_user(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct user_opts o = {.prog = "canary user", .url = "http://127.0.0.1:8080"};
    const char *arg = NULL;
    int rc = parse(&o, argc, argv, &arg);
    const char *sub = argv[1];
    if (rc == 0) {
        if (!strcmp(sub, "add"))
            rc = run(&o, user_add, arg, true, sub);
        else if (!strcmp(sub, "list"))
            rc = run(&o, list_users, arg, false, sub);
        else if (!strcmp(sub, "passwd"))
            rc = run(&o, user_passwd, arg, true, sub);
        else if (!strcmp(sub, "role"))
            rc = run(&o, role_user, arg, true, sub);
        else if (!strcmp(sub, "disable"))
            rc = run(&o, disable_user, arg, true, sub);
        else if (!strcmp(sub, "enable"))
            rc = run(&o, enable_user, arg, true, sub);
        else if (!strcmp(sub, "remove"))
            rc = run(&o, user_remove, arg, true, sub);
        else {
            fprintf(stderr, "canary user: unknown command '%s'\n\n", sub);
            usage_user(stderr);
            rc = 2;
        }
    }
    OPENSSL_cleanse(o.cred, sizeof o.cred);
    return rc;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage_token(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct user_opts o = {.prog = "canary token", .url = "http://127.0.0.1:8080"};
    const char *arg = NULL;
    int rc = parse(&o, argc, argv, &arg);
    const char *sub = argv[1];
    if (rc == 0) {
        if (!strcmp(sub, "create"))
            rc = run(&o, token_create, arg, true, sub);
        else if (!strcmp(sub, "list"))
            rc = run(&o, list_tokens, arg, false, sub);
        else if (!strcmp(sub, "revoke"))
            rc = run(&o, token_revoke, arg, true, sub);
        else {
            fprintf(stderr, "canary token: unknown command '%s'\n\n", sub);
            usage_token(stderr);
            rc = 2;
        }
    }
    OPENSSL_cleanse(o.cred, sizeof o.cred);
    return rc;
}
