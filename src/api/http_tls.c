/* http_tls.c — loads and checks the HTTPS certificate and key; contracts in http_tls.h.
 *
 * libmicrohttpd hands the PEM text to GnuTLS; the checks here use OpenSSL's parser (libcrypto,
 * already linked), which reads the same PEM forms (PKCS#8, SEC1 EC and PKCS#1 RSA keys,
 * encrypted PKCS#8 with a password), so a pair that passes here is one GnuTLS accepts, and a
 * pair that does not gets a specific message instead of "libmicrohttpd refused the options".
 * Protocol versions: TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1). */
#include "api/http_tls.h"

#include "core/error.h"
#include "core/log.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Reads a whole file of at most HTTP_TLS_MAX_FILE bytes into a NUL-terminated buffer. */
static int read_file(const char *key, const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        canary_errf(err, errlen, "http.%s: cannot read %s: %s", key, path, strerror(errno));
        return CANARY_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        canary_errf(err, errlen, "http.%s: %s is not a regular file", key, path);
        return CANARY_EIO;
    }
    if (st.st_size > (off_t)HTTP_TLS_MAX_FILE) {
        fclose(f);
        canary_errf(err, errlen, "http.%s: %s is %lld bytes; a PEM file is at most %u", key, path,
                    (long long)st.st_size, HTTP_TLS_MAX_FILE);
        return CANARY_EINVAL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        return CANARY_ENOMEM;
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n == 0) {
        free(buf);
        canary_errf(err, errlen, "http.%s: %s is %s", key, path, bad ? "unreadable" : "empty");
        return bad ? CANARY_EIO : CANARY_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    return CANARY_OK;
}

struct password {
    const char *text;
    bool asked; /* OpenSSL wanted one: the key is encrypted */
};

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    struct password *p = u;
    p->asked = true;
    size_t n = strlen(p->text);
    if (n == 0 || n >= (size_t)size)
        return -1;
    memcpy(buf, p->text, n);
    return (int)n;
}

/* Checks that cert_pem holds a certificate, key_pem a key that opens (with the password when
 * encrypted), and that they belong together. */
static int check_pair(const struct canary_config *cfg, const char *cert_pem, const char *key_pem,
                      char *err, size_t errlen)
{
    const char *cert_path = cfg->http.tls_cert, *key_path = cfg->http.tls_key;
    int rc = CANARY_EINVAL;
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *cert = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    struct password pw = {cfg->http.tls_key_password, false};
    EVP_PKEY *key = NULL;
    if (cert == NULL) {
        canary_errf(err, errlen, "http.tls_cert: %s holds no PEM certificate", cert_path);
        goto out;
    }
    key = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, password_cb, &pw) : NULL;
    if (key == NULL) {
        if (pw.asked && pw.text[0] == '\0')
            canary_errf(err, errlen,
                        "http.tls_key: %s is encrypted; set http.tls_key_password (a secret: "
                        "CANARY_HTTP_TLS_KEY_PASSWORD or http.tls_key_password_file)",
                        key_path);
        else if (pw.asked)
            canary_errf(err, errlen,
                        "http.tls_key: %s cannot be decrypted with http.tls_key_password "
                        "(wrong password?)",
                        key_path);
        else
            canary_errf(err, errlen, "http.tls_key: %s holds no PEM private key", key_path);
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        canary_errf(err, errlen,
                    "http.tls_key: the key in %s does not belong to the certificate in %s "
                    "(http.tls_cert)",
                    key_path, cert_path);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        log_warn("http.tls_cert_expired",
                 "path=%s action=\"clients will refuse it: renew it (canary cert --force)\"",
                 cert_path);
    else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        log_warn("http.tls_cert_not_yet_valid", "path=%s action=\"check the clock\"", cert_path);
    rc = CANARY_OK;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

int http_tls_load(struct http_tls *tls, const struct canary_config *cfg, char *err, size_t errlen)
{
    memset(tls, 0, sizeof *tls);
    tls->options[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    bool cert = cfg->http.tls_cert[0] != '\0', key = cfg->http.tls_key[0] != '\0';
    if (!cert && !key)
        return CANARY_OK;
    if (cert != key) {
        canary_errf(err, errlen, "http.%s is set but http.%s is not: HTTPS needs both",
                    cert ? "tls_cert" : "tls_key", cert ? "tls_key" : "tls_cert");
        return CANARY_EINVAL;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        canary_errf(err, errlen,
                    "http.tls_cert is set but this libmicrohttpd was built without TLS support "
                    "(install a libmicrohttpd built with GnuTLS, e.g. Debian's libmicrohttpd12)");
        return CANARY_EINVAL;
    }
    if (cfg->http.tls_key_password[0] != '\0' &&
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_KEY_PASSWORD) != MHD_YES) {
        canary_errf(err, errlen,
                    "http.tls_key_password is set but this libmicrohttpd cannot open encrypted "
                    "keys: decrypt the key (openssl pkey -in KEY -out KEY.plain, mode 0600)");
        return CANARY_EINVAL;
    }
    int rc = read_file("tls_cert", cfg->http.tls_cert, &tls->cert_pem, err, errlen);
    if (rc == 0)
        rc = read_file("tls_key", cfg->http.tls_key, &tls->key_pem, err, errlen);
    if (rc == 0)
        rc = check_pair(cfg, tls->cert_pem, tls->key_pem, err, errlen);
    if (rc != 0) {
        http_tls_free(tls);
        return rc;
    }
    tls->enabled = true;
    size_t n = 0;
    tls->options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls->key_pem};
    tls->options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls->cert_pem};
    tls->options[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
    if (cfg->http.tls_key_password[0] != '\0')
        tls->options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_KEY_PASSWORD, 0,
                                                    (void *)cfg->http.tls_key_password};
    tls->options[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return CANARY_OK;
}

unsigned http_tls_flags(const struct http_tls *tls)
{
    return tls->enabled ? MHD_USE_TLS : 0;
}

void http_tls_free(struct http_tls *tls)
{
    if (tls->key_pem != NULL)
        OPENSSL_cleanse(tls->key_pem, strlen(tls->key_pem));
    free(tls->key_pem);
    free(tls->cert_pem);
    tls->key_pem = tls->cert_pem = NULL;
    tls->enabled = false;
    tls->options[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}
