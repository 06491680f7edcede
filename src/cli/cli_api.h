/* cli_api.h — one JSON request from a `canary` command to canaryd's REST API, the one place
 * the commands that call canaryd (device, user, token, alerts, broker-config --from-api) build
 * it: the URL from a base and a path, an optional bearer credential, libcurl's TLS set up by
 * cli_tls.h, a timeout, and the answer parsed as JSON.
 *
 * Promises: the Authorization header and the answer's bytes are wiped before they are freed
 * (they may hold an admin token, a new device key, a password or an API token); an answer is
 * read up to CLI_API_MAX_ANSWER bytes, beyond which the call fails; nothing is printed on
 * success, one line "<prog>: <url>: <reason>" on stderr when canaryd cannot be reached. */
#ifndef CANARY_CLI_CLI_API_H
#define CANARY_CLI_CLI_API_H

#include <cjson/cJSON.h>

#define CLI_API_MAX_ANSWER (64u << 20)

/* method ("GET", "POST", ...) on base_url + path, with "Authorization: Bearer <bearer>" when
 * bearer is neither NULL nor empty, Content-Type application/json and body when body is not
 * NULL, the CA of ca (NULL: the system's store), at most timeout_s seconds. Returns the parsed
 * answer (NULL when it is not JSON) and sets *status to the HTTP status, or 0 when canaryd
 * could not be reached (then the reason is on stderr). */
cJSON *cli_api_call(const char *prog, const char *base_url, const char *bearer, const char *ca,
                    const char *method, const char *path, const char *body, long timeout_s,
                    long *status);

#endif
