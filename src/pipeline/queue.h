/* queue.h — a blocking FIFO of messages between threads (many producers, one consumer).
 *
 * Intrusive: a message embeds a `struct queue_node`, so pushing never allocates and never
 * fails. The queue itself is unbounded; the pipeline bounds what can be in it by admission
 * control (ingest.max_inflight), so memory stays bounded without producers ever blocking. */
#ifndef CANARY_PIPELINE_QUEUE_H
#define CANARY_PIPELINE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct queue_node {
    struct queue_node *next;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct queue_node *head, *tail;
    size_t length;
    bool closed;
};

void queue_init(struct queue *q);
void queue_destroy(struct queue *q);

/* Appends a node and wakes the consumer. */
void queue_push(struct queue *q, struct queue_node *n);

/* Takes every queued node (in FIFO order, linked through ->next), waiting up to timeout_ms
 * (< 0: forever) for one to arrive. Returns NULL on timeout, or when the queue is closed
 * and empty; *closed (if not NULL) tells the second case. */
struct queue_node *queue_take_all(struct queue *q, int64_t timeout_ms, bool *closed);

/* Closes the queue: the consumer's waits return once it is empty. Pushes still succeed
 * (a closing pipeline still drains). */
void queue_close(struct queue *q);

/* Number of queued nodes (a snapshot). */
size_t queue_length(struct queue *q);

#endif
