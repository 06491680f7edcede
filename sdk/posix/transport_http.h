/* transport_http.h — sending signed readings to canaryd over HTTP (libcurl), for POSIX devices.
 *
 * POST <base>/api/v1/ingest with Content-Type: application/jose and the JWS as the body
 * (docs/SECURITY.md "Wire format"). One connection is kept alive across readings. Nothing
 * here knows about readings or keys: it moves bytes. */
#ifndef CANARY_TRANSPORT_HTTP_H
#define CANARY_TRANSPORT_HTTP_H

#include <stddef.h>

struct cdev_http {
    void *curl;    /* CURL * */
    char url[600]; /* <base>/api/v1/ingest */
};

/* Prepares a sender for canaryd at base_url (http://127.0.0.1:8080 or https://...). ca_file
 * (may be NULL: the system's CAs) is the PEM file of the CA that signed canaryd's certificate,
 * e.g. the certificate `canary cert` made. Certificates and host names are always verified.
 * Returns 0 or -1. */
int cdev_http_open(struct cdev_http *h, const char *base_url, const char *ca_file);

/* Posts one token. Returns the HTTP status (200 accepted; 401, 403, 409 ... refused: canaryd's
 * JSON answer, cut to cap - 1 bytes, is in answer), or 0 when canaryd could not be reached
 * (answer then says why). Waits at most timeout_ms. */
long cdev_http_send(struct cdev_http *h, const char *token, size_t len, long timeout_ms,
                    char *answer, size_t cap);

void cdev_http_close(struct cdev_http *h);

#endif
