/* test_cert.c — `canary cert` (this build's CLI): the files it writes, their modes, the
 * certificate read back with OpenSSL (self-signed, verifies as its own trust anchor for a TLS
 * server, its key matches, ECDSA P-256, the subjectAltName holds exactly the names asked for,
 * the validity), the fingerprint and configuration lines it prints, the refusal to overwrite
 * without --force, and bad arguments refused with nothing written. That canaryd and Mosquitto
 * accept the pair is tested in test_tls.c and test_mqtt_tls.c. */
#include "harness.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct fixture {
    char dir[64];
    char out[128]; /* the --out-dir (not created in advance) */
    char cert[192], key[192], stdout_path[192];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-cert-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->out, sizeof f->out, "%s/tls", f->dir);
    snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->out);
    snprintf(f->key, sizeof f->key, "%s/key.pem", f->out);
    snprintf(f->stdout_path, sizeof f->stdout_path, "%s/stdout", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Runs `canary cert <args>`; returns its exit status. Its stdout goes to f->stdout_path. */
static int run_cert(struct fixture *f, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s cert %s >%s 2>>%s/stderr", CANARY_CLI_PATH, args, f->stdout_path,
             f->dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(k);
    return k;
}

/* The SAN as "DNS:a IP:b ..." in certificate order. */
static void san_text(X509 *x, char *out, size_t len)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        size_t at = strlen(out);
        if (g->type == GEN_DNS) {
            snprintf(out + at, len - at, "%sDNS:%s", at ? " " : "",
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            char ip[INET6_ADDRSTRLEN];
            int n = ASN1_STRING_length(g->d.iPAddress);
            assert_true(n == 4 || n == 16);
            inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), ip,
                      sizeof ip);
            snprintf(out + at, len - at, "%sIP:%s", at ? " " : "", ip);
        } else {
            fail_msg("unexpected SAN type %d", g->type);
        }
    }
    GENERAL_NAMES_free(names);
}

/* Verifies x against itself as the only trust anchor, for a TLS server, as libcurl (OpenSSL)
 * does with --cacert. */
static int verify_as_anchor(X509 *x)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, x);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, x, NULL);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok == 1 ? 0 : err;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void test_defaults(void **state)
{
    struct fixture *f = *state;
    char args[256];
    snprintf(args, sizeof args, "--out-dir %s", f->out);
    assert_int_equal(run_cert(f, args), 0);
    assert_int_equal(mode_of(f->key), 0600);
    assert_int_equal(mode_of(f->cert), 0644);

    X509 *x = read_cert(f->cert);
    EVP_PKEY *k = read_key(f->key);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1); /* self-signed */
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
    char group[32] = "";
    size_t glen = 0;
    EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &glen);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_get_version(x), 2);
    assert_int_equal(verify_as_anchor(x), 0);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_host(x, "example.com", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 0);

    char san[1024], expect[512];
    san_text(x, san, sizeof san);
    char host[256] = "";
    gethostname(host, sizeof host);
    if (host[0] != '\0' && strcmp(host, "localhost") != 0 && strchr(host, '_') == NULL)
        snprintf(expect, sizeof expect, "DNS:localhost DNS:%s IP:127.0.0.1 IP:::1", host);
    else
        snprintf(expect, sizeof expect, "DNS:localhost IP:127.0.0.1 IP:::1");
    assert_string_equal(san, expect);

    /* Valid now, for the default 365 days. */
    int day, sec;
    assert_int_equal(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(x)), 1);
    assert_true(day == 364 || day == 365);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);

    /* The fingerprint and the configuration lines. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    X509_digest(x, EVP_sha256(), md, &md_len);
    char fp[3 * EVP_MAX_MD_SIZE + 1] = "";
    for (unsigned i = 0; i < md_len; i++)
        snprintf(fp + 3 * i, sizeof fp - 3 * i, "%02X%s", md[i], i + 1 < md_len ? ":" : "");
    char *out = slurp(f->stdout_path);
    assert_non_null(out);
    assert_non_null(strstr(out, fp));
    char line[256];
    snprintf(line, sizeof line, "tls_cert = %s\n", f->cert);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof line, "tls_key = %s\n", f->key);
    assert_non_null(strstr(out, line));
    snprintf(line, sizeof line, "tls_ca = %s\n", f->cert);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "CANARY_CA="));
    /* The key is never printed. */
    char *key_pem = slurp(f->key);
    assert_non_null(strstr(key_pem, "-----BEGIN PRIVATE KEY-----"));
    assert_null(strstr(out, "PRIVATE KEY"));
    char body[40];
    snprintf(body, sizeof body, "%.32s", key_pem + strlen("-----BEGIN PRIVATE KEY-----\n"));
    assert_null(strstr(out, body));
    free(key_pem);
    free(out);
    EVP_PKEY_free(k);
    X509_free(x);
}

static void test_names_and_days(void **state)
{
    struct fixture *f = *state;
    char args[512];
    snprintf(args, sizeof args,
             "--out-dir %s --host canary.example.org --host gw-1.lan --host CANARY.example.org "
             "--ip 10.1.2.3 --ip 2001:db8::0001 --ip 2001:db8::1 --days 30",
             f->out);
    assert_int_equal(run_cert(f, args), 0);
    X509 *x = read_cert(f->cert);
    char san[1024];
    san_text(x, san, sizeof san);
    /* Duplicates (case-insensitive names, equal addresses) appear once, canonical. */
    assert_string_equal(san, "DNS:canary.example.org DNS:gw-1.lan IP:10.1.2.3 IP:2001:db8::1");
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "canary.example.org");
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 0); /* not added */
    int day, sec;
    assert_int_equal(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(x)), 1);
    assert_true(day == 29 || day == 30);
    X509_free(x);

    /* Only an address: it is the CN, and the certificate still verifies. */
    snprintf(args, sizeof args, "--out-dir %s --ip 192.168.1.20 --force", f->out);
    assert_int_equal(run_cert(f, args), 0);
    x = read_cert(f->cert);
    san_text(x, san, sizeof san);
    assert_string_equal(san, "IP:192.168.1.20");
    assert_int_equal(verify_as_anchor(x), 0);
    X509_free(x);
}

static void test_refuses_to_overwrite(void **state)
{
    struct fixture *f = *state;
    char args[256];
    snprintf(args, sizeof args, "--out-dir %s", f->out);
    assert_int_equal(run_cert(f, args), 0);
    char *cert1 = slurp(f->cert), *key1 = slurp(f->key);

    assert_int_equal(run_cert(f, args), 1);
    char *cert2 = slurp(f->cert), *key2 = slurp(f->key);
    assert_string_equal(cert1, cert2);
    assert_string_equal(key1, key2);
    free(cert2);
    free(key2);
    char *err = slurp(f->stdout_path);
    free(err);
    char errpath[128];
    snprintf(errpath, sizeof errpath, "%s/stderr", f->dir);
    err = slurp(errpath);
    assert_non_null(strstr(err, "--force"));
    free(err);

    /* Only the key left (the certificate deleted): still refused, the key kept. */
    assert_int_equal(unlink(f->cert), 0);
    assert_int_equal(run_cert(f, args), 1);
    assert_int_equal(access(f->cert, F_OK), -1);
    key2 = slurp(f->key);
    assert_string_equal(key1, key2);
    free(key2);

    /* --force replaces both with a new pair. */
    snprintf(args, sizeof args, "--out-dir %s --force", f->out);
    assert_int_equal(run_cert(f, args), 0);
    cert2 = slurp(f->cert);
    key2 = slurp(f->key);
    assert_string_not_equal(cert1, cert2);
    assert_string_not_equal(key1, key2);
    assert_int_equal(mode_of(f->key), 0600);
    X509 *x = read_cert(f->cert);
    EVP_PKEY *k = read_key(f->key);
    assert_int_equal(X509_check_private_key(x, k), 1);
    EVP_PKEY_free(k);
    X509_free(x);
    free(cert1);
    free(key1);
    free(cert2);
    free(key2);
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    for (size_t i = 0; i < 254; i++)
        long_name[i] = (i % 10 == 9) ? '.' : 'b';
    long_name[254] = '\0';
    const char *const bad[] = {
        "",                                   /* no --out-dir */
        "--host localhost",                   /* no --out-dir */
        "--out-dir",                          /* missing value */
        "--out-dir %s --bogus 1",             /* unknown option */
        "--out-dir %s stray",                 /* unexpected argument */
        "--out-dir %s --host 'a b'",          /* a blank */
        "--out-dir %s --host -lead",          /* a label starting with '-' */
        "--out-dir %s --host trail-",         /* ... or ending with one */
        "--out-dir %s --host a..b",           /* an empty label */
        "--out-dir %s --host ''",             /* empty */
        "--out-dir %s --host 'x,IP:1.2.3.4'", /* smuggling a second SAN entry */
        "--out-dir %s --host 'a\nb'",
        "--out-dir %s --host under_score",
        "--out-dir %s --host 10.0.0.1:80",
        "--out-dir %s --ip 300.1.1.1",
        "--out-dir %s --ip ''",
        "--out-dir %s --ip localhost",
        "--out-dir %s --ip 10.0.0.1/24",
        "--out-dir %s --days 0",
        "--out-dir %s --days 3651",
        "--out-dir %s --days -5",
        "--out-dir %s --days 12x",
        "--out-dir %s --days 99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, bad[i], f->out);
        int rc = run_cert(f, args);
        if (rc != 2)
            fail_msg("'canary cert %s' exited %d, expected 2", args, rc);
        assert_int_equal(access(f->out, F_OK), -1); /* nothing written, not even the dir */
    }
    char args[1024];
    snprintf(args, sizeof args, "--out-dir %s --host %s.example", f->out, long_label);
    assert_int_equal(run_cert(f, args), 2);
    snprintf(args, sizeof args, "--out-dir %s --host %s", f->out, long_name);
    assert_int_equal(run_cert(f, args), 2);
    assert_int_equal(access(f->out, F_OK), -1);
    /* 63-byte labels and a wildcard are fine. */
    long_label[63] = '\0';
    snprintf(args, sizeof args, "--out-dir %s --host %s.example --host '*.lan'", f->out,
             long_label);
    assert_int_equal(run_cert(f, args), 0);

    /* The output "directory" is a file: a run-time failure, nothing written. */
    char file[160];
    snprintf(file, sizeof file, "%s/plain-file", f->dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    snprintf(args, sizeof args, "--out-dir %s", file);
    assert_int_equal(run_cert(f, args), 1);
    snprintf(args, sizeof args, "--out-dir %s/missing/deeper", f->dir);
    assert_int_equal(run_cert(f, args), 1);
    assert_int_equal(run_cert(f, "--help"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_days, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_to_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
