/* queue.c — mutex + condition variable FIFO; see queue.h. */
#include "pipeline/queue.h"

#include <errno.h>
#include <time.h>

void queue_init(struct queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->nonempty, &attr);
    pthread_condattr_destroy(&attr);
    q->head = q->tail = NULL;
    q->length = 0;
    q->closed = false;
}

void queue_destroy(struct queue *q)
{
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->nonempty);
}

void queue_push(struct queue *q, struct queue_node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail != NULL)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->length++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

struct queue_node *queue_take_all(struct queue *q, int64_t timeout_ms, bool *closed)
{
    struct timespec deadline;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&q->lock);
    while (q->head == NULL && !q->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->nonempty, &q->lock);
        } else if (pthread_cond_timedwait(&q->nonempty, &q->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    struct queue_node *all = q->head;
    q->head = q->tail = NULL;
    q->length = 0;
    if (closed != NULL)
        *closed = all == NULL && q->closed;
    pthread_mutex_unlock(&q->lock);
    return all;
}

void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

size_t queue_length(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->length;
    pthread_mutex_unlock(&q->lock);
    return n;
}
