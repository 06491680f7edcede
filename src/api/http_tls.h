/* http_tls.h — the HTTPS side of canaryd's HTTP server: loading and checking the certificate
 * and key named by http.tls_cert / http.tls_key (optionally encrypted with
 * http.tls_key_password) before libmicrohttpd sees them, so that every way of getting them
 * wrong is a sentence at start-up, never a crash or libmicrohttpd's bare refusal:
 *   - TLS configured but libmicrohttpd built without it (MHD_FEATURE_TLS);
 *   - only one of tls_cert / tls_key set;
 *   - a file that cannot be read, is empty, too large, or holds no PEM certificate / key;
 *   - an encrypted key without a password (or with the wrong one);
 *   - a key that is not the certificate's.
 * A certificate outside its validity period is accepted with a warning in the log (clients
 * will refuse it; the operator should see why). Used by http.c only. */
#ifndef CANARY_API_HTTP_TLS_H
#define CANARY_API_HTTP_TLS_H

#include "core/config.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* The largest certificate (chain) or key file accepted. */
#define HTTP_TLS_MAX_FILE (1u << 20)

/* Options for MHD_OPTION_ARRAY: the TLS flag's companions (key, certificate, password,
 * priorities), or just MHD_OPTION_END when TLS is off. */
#define HTTP_TLS_MAX_OPTIONS 5

struct http_tls {
    bool enabled;   /* http.tls_cert is set: the server speaks only HTTPS */
    char *cert_pem; /* the certificate file (chain), NUL-terminated; owned */
    char *key_pem;  /* the key file, NUL-terminated; owned, wiped when freed */
    struct MHD_OptionItem options[HTTP_TLS_MAX_OPTIONS];
};

/* Fills tls from cfg. With TLS off, sets enabled = false and an options list of only
 * MHD_OPTION_END, and returns 0. Otherwise reads and checks the files (see the top of this
 * file). Returns 0, or CANARY_EINVAL / CANARY_EIO / CANARY_ENOMEM with a message naming the
 * key and file in err; tls then holds nothing to free. The options point into tls, which must
 * outlive the daemon. */
int http_tls_load(struct http_tls *tls, const struct canary_config *cfg, char *err, size_t errlen);

/* The MHD_start_daemon flag to add: MHD_USE_TLS when enabled, else 0. */
unsigned http_tls_flags(const struct http_tls *tls);

/* Wipes the key and frees both buffers. Safe on a zeroed or already freed struct. */
void http_tls_free(struct http_tls *tls);

#endif
