/* broker.h — integration-test helpers for MQTT: a private Mosquitto on a free loopback port
 * (its own directory, generated config, persistence on, so a restart keeps sessions), and a
 * small libmosquitto client that publishes at QoS 1 waiting for the PUBACK and collects
 * what it receives. Nothing depends on a system-wide broker. */
#ifndef CANARY_TESTS_BROKER_H
#define CANARY_TESTS_BROKER_H

#include <mosquitto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct broker {
    pid_t pid;
    unsigned port;
    char port_str[8];
    char dir[64];
};

/* Starts a broker on a free port (or restarts it on b->port when b->dir is set and it is
 * stopped). Fails the test when it does not accept connections within 5 s. */
void broker_start(struct broker *b);

/* Stops it (SIGTERM, wait). */
void broker_stop(struct broker *b);

/* Stops it if running and removes its directory. */
void broker_cleanup(struct broker *b);

#define MQ_MAX_MESSAGES 4096

struct mq_message {
    char topic[128];
    char payload[1024];
    int len;
    bool retained;
};

/* A test client: threaded loop, QoS 1 publishes acknowledged synchronously. */
struct mq_client {
    struct mosquitto *mosq;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool connected;
    int acked; /* PUBACKs received */
    struct mq_message *messages;
    size_t n_messages;
};

/* Connects (clean session) with an optional will (retained, QoS 1) and subscribes to sub
 * (NULL: none). Fails the test on error. */
void mq_connect(struct mq_client *c, const struct broker *b, const char *client_id,
                const char *will_topic, const char *will_payload, const char *sub);

/* Publishes and, at QoS 1, waits for the PUBACK. Returns true when acknowledged (QoS 0:
 * when handed to the socket). */
bool mq_publish(struct mq_client *c, const char *topic, const char *payload, int qos, bool retain);

/* Waits until a message on topic (exact) whose payload contains `needle` (NULL: any) has
 * arrived; returns its index or -1 after timeout_ms. */
int mq_wait_message(struct mq_client *c, const char *topic, const char *needle, int timeout_ms);

/* Disconnects cleanly (disconnect = true) or drops the socket so the broker publishes the
 * will (false), and frees the client. */
void mq_close(struct mq_client *c, bool disconnect);

#endif
