/* cert.c — `canary cert`: a self-signed TLS certificate and its key for a first start of
 * canaryd's HTTPS listener (http.tls_cert, http.tls_key) and of Mosquitto's TLS listener
 * (`canary broker-config --tls-cert/--tls-key`); clients trust it with --ca / CANARY_CA or
 * mqtt.tls_ca (docs/HARDENING.md).
 *
 * What it makes: an ECDSA P-256 key (GnuTLS in libmicrohttpd, OpenSSL in Mosquitto and
 * libcurl all accept it; signing is ~10x cheaper than RSA-2048 on a handshake) and an X.509 v3
 * certificate signed with it (SHA-256), valid from five minutes ago for --days days, with a
 * subjectAltName entry for every --host and --ip (RFC 6125: clients match the SAN, not the
 * CN), basicConstraints CA:FALSE, keyUsage digitalSignature and extendedKeyUsage
 * serverAuth+clientAuth. Without --host/--ip the names are localhost, 127.0.0.1, ::1 and the
 * machine's host name.
 *
 * Promises: the key never leaves the key file (mode 0600) and is never printed; each file is
 * written whole and atomically (core/file_atomic.h), the key first; an existing cert.pem or
 * key.pem is never overwritten without --force (then nothing is written at all). Host names
 * and addresses are checked before anything is made. */
#include "cli/commands.h"
#include "core/error.h"
#include "core/file_atomic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG              "canary cert"
#define CERT_FILE         "cert.pem"
#define KEY_FILE          "key.pem"
#define MAX_NAMES         64
#define MAX_DAYS          3650
#define DEFAULT_DAYS      365
#define HOST_NAME_MAX_LEN 253

struct cert_opts {
    const char *out_dir;
    const char *hosts[MAX_NAMES];
    size_t n_hosts;
    char ips[MAX_NAMES][INET6_ADDRSTRLEN];
    size_t n_ips;
    unsigned days;
    bool force;
    char own_host[HOST_NAME_MAX_LEN + 1]; /* gethostname(), when it is a valid DNS name */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: canary cert --out-dir DIR [--host NAME]... [--ip ADDR]... [--days N] "
            "[--force]\n\n"
            "Makes a self-signed TLS certificate (DIR/" CERT_FILE ") and its ECDSA P-256 key\n"
            "(DIR/" KEY_FILE ", mode 0600) for canaryd's HTTPS listener and Mosquitto's TLS\n"
            "listener, and prints its SHA-256 fingerprint and the configuration lines to use.\n\n"
            "  --out-dir DIR   where to write the files (created if missing)\n"
            "  --host NAME     a DNS name clients use to reach the server (repeatable)\n"
            "  --ip ADDR       an IPv4 or IPv6 address clients use (repeatable)\n"
            "                  without --host and --ip: localhost, 127.0.0.1, ::1 and this\n"
            "                  machine's host name\n"
            "  --days N        validity in days, 1 to %d (default %d)\n"
            "  --force         replace existing files (the old key is gone: re-distribute the\n"
            "                  new certificate to every client)\n",
            MAX_DAYS, DEFAULT_DAYS);
}

/* A DNS name as RFC 1123 allows it: labels of letters, digits and '-', not starting or ending
 * with '-', 1 to 63 bytes each, 253 in all; a leading "*." wildcard label is allowed. */
static bool host_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > HOST_NAME_MAX_LEN)
        return false;
    if (strncmp(h, "*.", 2) == 0) {
        h += 2;
        n -= 2;
        if (n == 0)
            return false;
    }
    size_t label = 0;
    char prev = '.';
    for (const char *p = h;; p++) {
        char c = *p;
        if (c == '.' || c == '\0') {
            if (label == 0 || prev == '-')
                return false;
            if (c == '\0')
                return true;
            label = 0;
        } else {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-';
            if (!ok || (label == 0 && c == '-') || ++label > 63)
                return false;
        }
        prev = c;
    }
}

/* Parses an address into its canonical text (so "::0001" and "::1" are one entry). */
static bool ip_canonical(const char *s, char out[INET6_ADDRSTRLEN])
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1)
        return inet_ntop(AF_INET, buf, out, INET6_ADDRSTRLEN) != NULL;
    if (inet_pton(AF_INET6, s, buf) == 1)
        return inet_ntop(AF_INET6, buf, out, INET6_ADDRSTRLEN) != NULL;
    return false;
}

static bool add_host(struct cert_opts *o, const char *h)
{
    for (size_t i = 0; i < o->n_hosts; i++)
        if (strcasecmp(o->hosts[i], h) == 0)
            return true;
    if (o->n_hosts == MAX_NAMES)
        return false;
    o->hosts[o->n_hosts++] = h;
    return true;
}

static bool add_ip(struct cert_opts *o, const char *canonical)
{
    for (size_t i = 0; i < o->n_ips; i++)
        if (strcmp(o->ips[i], canonical) == 0)
            return true;
    if (o->n_ips == MAX_NAMES)
        return false;
    snprintf(o->ips[o->n_ips++], INET6_ADDRSTRLEN, "%s", canonical);
    return true;
}

static void default_names(struct cert_opts *o)
{
    add_host(o, "localhost");
    if (gethostname(o->own_host, sizeof o->own_host) == 0) {
        o->own_host[sizeof o->own_host - 1] = '\0';
        if (host_valid(o->own_host) && o->own_host[0] != '*')
            add_host(o, o->own_host);
    }
    add_ip(o, "127.0.0.1");
    add_ip(o, "::1");
}

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return false;
    bool ok = X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/* The subjectAltName built entry by entry (not from a config string, so no name can smuggle
 * in a second entry). */
static bool add_san(X509 *x, const struct cert_opts *o)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    bool ok = names != NULL;
    for (size_t i = 0; ok && i < o->n_hosts; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ok = g != NULL && s != NULL && ASN1_STRING_set(s, o->hosts[i], -1) == 1;
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
            s = NULL;
            ok = sk_GENERAL_NAME_push(names, g) > 0;
            if (ok)
                g = NULL;
        }
        ASN1_IA5STRING_free(s);
        GENERAL_NAME_free(g);
    }
    for (size_t i = 0; ok && i < o->n_ips; i++) {
        GENERAL_NAME *g = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD, o->ips[i], 0);
        ok = g != NULL && sk_GENERAL_NAME_push(names, g) > 0;
        if (!ok)
            GENERAL_NAME_free(g);
    }
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(names);
    return ok;
}

static X509 *make_cert(const struct cert_opts *o, EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *sn = NULL;
    bool ok = RAND_bytes(serial, sizeof serial) == 1;
    serial[0] &= 0x7f; /* positive, at most 20 octets (RFC 5280 4.1.2.2) */
    serial[0] |= 0x40; /* and never shortened by leading zeros */
    ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL &&
         (sn = BN_to_ASN1_INTEGER(bn, NULL)) != NULL && X509_set_serialNumber(x, sn) == 1;
    ok = ok && X509_set_version(x, 2) == 1 && X509_gmtime_adj(X509_getm_notBefore(x), -300) &&
         X509_time_adj_ex(X509_getm_notAfter(x), (int)o->days, 0, NULL) != NULL &&
         X509_set_pubkey(x, key) == 1;
    /* The CN is informational (clients match the SAN) and at most 64 characters (RFC 5280
     * ub-common-name). */
    const char *cn = o->n_hosts > 0 ? o->hosts[0] : o->ips[0];
    if (strlen(cn) > 64)
        cn = "canary";
    X509_NAME *name = X509_get_subject_name(x);
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"canary", -1,
                                    -1, 0) == 1 &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(x, name) == 1;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ok = ok && add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") &&
         add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") &&
         add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
         add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") && add_san(x, o);
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* PEM of the key or the certificate into a malloc'd buffer (*len bytes). */
static char *pem_of(EVP_PKEY *key, X509 *cert, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    bool ok = key != NULL ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1
                          : PEM_write_bio_X509(b, cert) == 1;
    char *out = NULL;
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (ok && n > 0 && (out = malloc((size_t)n)) != NULL) {
        memcpy(out, data, (size_t)n);
        *len = (size_t)n;
    }
    BIO_free(b); /* BIO_s_mem clears its buffer when freed */
    return out;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int generate(struct cert_opts *o)
{
    struct stat st;
    if (stat(o->out_dir, &st) != 0) {
        if (errno != ENOENT || mkdir(o->out_dir, 0755) != 0) {
            fprintf(stderr, "%s: cannot create %s: %s\n", PROG, o->out_dir, strerror(errno));
            return 1;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", PROG, o->out_dir);
        return 1;
    }
    char dir[PATH_MAX], cert_path[PATH_MAX + 16], key_path[PATH_MAX + 16];
    if (realpath(o->out_dir, dir) == NULL) {
        fprintf(stderr, "%s: %s: %s\n", PROG, o->out_dir, strerror(errno));
        return 1;
    }
    snprintf(cert_path, sizeof cert_path, "%s/" CERT_FILE, dir);
    snprintf(key_path, sizeof key_path, "%s/" KEY_FILE, dir);
    if (!o->force && (file_exists(cert_path) || file_exists(key_path))) {
        fprintf(stderr,
                "%s: %s already holds %s; not replacing a certificate and key clients may "
                "trust (--force replaces both)\n",
                PROG, dir, file_exists(cert_path) ? CERT_FILE : KEY_FILE);
        return 1;
    }

    int rc = 1;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key != NULL ? make_cert(o, key) : NULL;
    size_t key_len = 0, cert_len = 0;
    char *key_pem = cert != NULL ? pem_of(key, NULL, &key_len) : NULL;
    char *cert_pem = cert != NULL ? pem_of(NULL, cert, &cert_len) : NULL;
    if (key_pem == NULL || cert_pem == NULL) {
        fprintf(stderr, "%s: OpenSSL could not make the key or the certificate\n", PROG);
        goto out;
    }
    char err[PATH_MAX + 256];
    if (file_write_atomic(key_path, key_pem, key_len, 0600, err, sizeof err) != 0 ||
        file_write_atomic(cert_path, cert_pem, cert_len, 0644, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    X509_digest(cert, EVP_sha256(), md, &md_len);
    printf("certificate: %s (valid %u days)\nkey:         %s (mode 0600: keep it secret)\n",
           cert_path, o->days, key_path);
    printf("names:      ");
    for (size_t i = 0; i < o->n_hosts; i++)
        printf(" DNS:%s", o->hosts[i]);
    for (size_t i = 0; i < o->n_ips; i++)
        printf(" IP:%s", o->ips[i]);
    printf("\nSHA-256 fingerprint: ");
    for (unsigned i = 0; i < md_len; i++)
        printf("%02X%s", md[i], i + 1 < md_len ? ":" : "\n");
    printf("\n# canaryd (canary.conf): HTTPS for the API, the dashboard and ingest\n"
           "[http]\ntls_cert = %s\ntls_key = %s\n\n"
           "# clients (canary device, alerts, simulate --http, curl): trust this certificate\n"
           "export CANARY_CA=%s        # or --ca %s; curl --cacert %s\n\n"
           "# Mosquitto: canary broker-config ... --tls-cert %s --tls-key %s\n"
           "# and canaryd's connection to it:\n"
           "[mqtt]\nport = 8883\ntls_ca = %s\n",
           cert_path, key_path, cert_path, cert_path, cert_path, cert_path, key_path, cert_path);
    rc = 0;
out:
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int cmd_cert(int argc, char **argv)
{
    struct cert_opts o = {.days = DEFAULT_DAYS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--force")) {
            o.force = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL || a[0] != '-') {
            fprintf(stderr, "%s: %s '%s' (see --help)\n", PROG,
                    a[0] == '-' ? "missing value for" : "unexpected argument", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--out-dir")) {
            o.out_dir = v;
        } else if (!strcmp(a, "--host")) {
            if (!host_valid(v)) {
                fprintf(stderr,
                        "%s: --host '%.80s' is not a DNS name (letters, digits, '-' and '.'; "
                        "for an address use --ip)\n",
                        PROG, v);
                return 2;
            }
            if (!add_host(&o, v)) {
                fprintf(stderr, "%s: at most %d --host\n", PROG, MAX_NAMES);
                return 2;
            }
        } else if (!strcmp(a, "--ip")) {
            char canonical[INET6_ADDRSTRLEN];
            if (!ip_canonical(v, canonical)) {
                fprintf(stderr, "%s: --ip '%.80s' is not an IPv4 or IPv6 address\n", PROG, v);
                return 2;
            }
            if (!add_ip(&o, canonical)) {
                fprintf(stderr, "%s: at most %d --ip\n", PROG, MAX_NAMES);
                return 2;
            }
        } else if (!strcmp(a, "--days")) {
            char *end;
            errno = 0;
            long d = strtol(v, &end, 10);
            if (errno != 0 || *end != '\0' || end == v || d < 1 || d > MAX_DAYS) {
                fprintf(stderr, "%s: --days takes a number of days, 1 to %d\n", PROG, MAX_DAYS);
                return 2;
            }
            o.days = (unsigned)d;
        } else {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", PROG, a);
            return 2;
        }
    }
    if (o.out_dir == NULL) {
        fprintf(stderr, "%s: where to? --out-dir DIR (see --help)\n", PROG);
        return 2;
    }
    if (o.n_hosts == 0 && o.n_ips == 0)
        default_names(&o);
    return generate(&o);
}
