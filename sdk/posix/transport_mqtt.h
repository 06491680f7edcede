/* transport_mqtt.h — publishing signed readings to an MQTT broker (libmosquitto), for POSIX
 * devices, as docs/MQTT.md describes a device:
 *  - client id and (optionally) broker user = the device id, as `canary broker-config` sets up;
 *  - will: "offline" on <prefix>/<id>/status, retained, QoS 1; "online" published (retained)
 *    once connected; "sleeping" before a planned disconnect;
 *  - each reading (the JWS) on <prefix>/<id>/up at QoS 1, waiting for the broker's PUBACK.
 * Synchronous and single-threaded (mosquitto_loop until the answer arrives). */
#ifndef CANARY_TRANSPORT_MQTT_H
#define CANARY_TRANSPORT_MQTT_H

#include <stdbool.h>
#include <stddef.h>

struct cdev_mqtt {
    void *mosq; /* struct mosquitto * */
    char up_topic[200], status_topic[200];
    int connack;   /* -1 until CONNACK, then its return code */
    int acked_mid; /* the last PUBACKed message id */
    bool connected;
};

/* Connects to host:port as device (username/password may be NULL) and announces "online".
 * With ca_file (a PEM CA file; NULL: plain MQTT) the connection is TLS, the broker's
 * certificate and host name verified against it. Returns 0, or -1 with a sentence in err. */
int cdev_mqtt_open(struct cdev_mqtt *m, const char *host, int port, const char *device,
                   const char *prefix, const char *username, const char *password,
                   const char *ca_file, long timeout_ms, char *err, size_t errlen);

/* Publishes one token on the up topic and waits for its PUBACK. Returns 0, or -1 with err. */
int cdev_mqtt_send(struct cdev_mqtt *m, const char *token, size_t len, long timeout_ms, char *err,
                   size_t errlen);

/* Publishes "sleeping", disconnects cleanly and frees the client. */
void cdev_mqtt_close(struct cdev_mqtt *m);

#endif
