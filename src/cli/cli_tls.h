/* cli_tls.h — the one place where a `canary` command that calls canaryd (or sends readings)
 * over HTTP sets up libcurl's TLS: every such command takes an https:// URL and a CA file
 * (--ca FILE, else $CANARY_CA) that replaces the system's CA store for that call
 * (CURLOPT_CAINFO). Verification of the certificate and of the host name is always on; there
 * is no switch that turns it off (docs/HARDENING.md). Only http:// and https:// URLs are
 * accepted (no file://, no redirects to other schemes). */
#ifndef CANARY_CLI_CLI_TLS_H
#define CANARY_CLI_CLI_TLS_H

#include <curl/curl.h>
#include <stdbool.h>

/* The line every such command's --help prints. */
#define CLI_TLS_USAGE                                                                              \
    "  --ca FILE               CA certificate(s) that canaryd's https:// certificate must\n"       \
    "                          chain to (default $CANARY_CA, else the system's CA store;\n"        \
    "                          for `canary cert`'s pair: its cert.pem)\n"

/* The CA file to use: flag_value when not NULL, else $CANARY_CA when set and not empty, else
 * NULL (the system's store). */
const char *cli_tls_ca(const char *flag_value);

/* Checks that ca (may be NULL: nothing to check) is a readable file holding at least one PEM
 * certificate. On failure prints "<prog>: ..." to stderr and returns false. */
bool cli_tls_check_ca(const char *prog, const char *ca);

/* Applies the shared settings to an easy handle: http/https only, peer and host verification
 * on, TLS 1.2 at least, and CURLOPT_CAINFO = ca when ca is not NULL. */
void cli_tls_apply(CURL *c, const char *ca);

#endif
