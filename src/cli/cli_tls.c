/* cli_tls.c — libcurl TLS settings shared by the canary commands; contracts in cli_tls.h. */
#include "cli/cli_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *cli_tls_ca(const char *flag_value)
{
    if (flag_value != NULL)
        return flag_value;
    const char *env = getenv("CANARY_CA");
    return env != NULL && env[0] != '\0' ? env : NULL;
}

bool cli_tls_check_ca(const char *prog, const char *ca)
{
    if (ca == NULL)
        return true;
    struct stat st;
    FILE *f = fopen(ca, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot read the CA file %s (--ca or $CANARY_CA): %s\n", prog, ca,
                strerror(errno));
        return false;
    }
    bool regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    bool pem = false;
    char line[256];
    while (regular && !pem && fgets(line, sizeof line, f) != NULL)
        pem = strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
    fclose(f);
    if (!pem) {
        fprintf(stderr, "%s: %s (--ca or $CANARY_CA) holds no PEM certificate\n", prog, ca);
        return false;
    }
    return true;
}

void cli_tls_apply(CURL *c, const char *ca)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (ca != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
}
