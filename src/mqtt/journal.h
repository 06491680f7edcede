/* journal.h — a crash-safe log of received MQTT messages.
 *
 * Why: a QoS 1 message is acknowledged to the broker when the message callback returns
 * (libmosquitto's threaded loop sends the PUBACK after on_message). Waiting in the callback
 * until the reading is committed would allow one commit per message; instead the callback
 * appends the message here (one write(2), no fsync) and returns, and the reading is
 * committed moments later in a group commit. A write that returned is in the kernel's page
 * cache: it survives kill -9 of canaryd (not a power cut; the window is the few
 * milliseconds between the PUBACK and the group commit, see docs/MQTT.md). At start,
 * whatever the journal still holds is replayed through the pipeline, whose (device, seq)
 * duplicate check stores each reading exactly once.
 *
 * Layout: segment files <path>.<first seqno, 16 hex digits>, each an 16-byte header
 * ("CNRYJ001" + first seqno) and records:
 *   u32 crc32 of the rest | u32 payload length | u16 topic length | u8 qos | u8 0 |
 *   i64 receive time (Unix ms) | topic | payload            (little-endian)
 * A torn or corrupted tail (a crash mid-write, a damaged disk) ends replay of that segment
 * and is reported. Records get consecutive seqnos; once every record up to a seqno is
 * stored elsewhere (journal_release), segments that hold nothing newer are deleted. A clean
 * shutdown that released everything leaves no file behind.
 *
 * Thread-safe: append and release may come from different threads. */
#ifndef CANARY_MQTT_JOURNAL_H
#define CANARY_MQTT_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

struct journal_record {
    uint64_t seqno;
    int64_t recv_ms;
    unsigned qos;
    const char *topic; /* not NUL-terminated */
    size_t topic_len;
    const char *payload;
    size_t payload_len;
};

struct journal_stats {
    uint64_t appended;   /* records appended by this process */
    uint64_t replayed;   /* records found at open */
    uint64_t torn;       /* segments whose tail was torn or corrupt */
    uint64_t segments;   /* files on disk now */
    uint64_t unreleased; /* records appended or replayed, not yet released */
};

/* Opens the journal at path (the directory must exist) and reads what an earlier run left.
 * segment_bytes: a segment is closed past this size. Returns 0, or CANARY_EIO with a
 * message. */
int journal_open(struct journal **out, const char *path, size_t segment_bytes, char *err,
                 size_t errlen);

/* Calls fn for every record left by an earlier run, oldest first (fn returns 0 to go on).
 * Record memory is valid only during the call. Returns 0, fn's non-zero result, or
 * CANARY_EIO. */
int journal_replay(struct journal *j, int (*fn)(void *arg, const struct journal_record *r),
                   void *arg, char *err, size_t errlen);

/* The highest seqno handed out so far (replayed records included); 0 if none. */
uint64_t journal_last_seqno(struct journal *j);

/* Appends one record; *seqno receives its number. Returns 0, or CANARY_EIO (the record is
 * not safe: the caller must make it durable another way) or CANARY_ELIMIT (too large). */
int journal_append(struct journal *j, const char *topic, size_t topic_len, const void *payload,
                   size_t payload_len, int64_t recv_ms, unsigned qos, uint64_t *seqno);

/* Every record with seqno <= upto is stored elsewhere: segments holding only such records
 * are deleted. */
void journal_release(struct journal *j, uint64_t upto);

void journal_get_stats(struct journal *j, struct journal_stats *out);

/* Closes the journal; if everything was released, removes its last segment too. */
void journal_close(struct journal *j);

#endif
