/* chunk.h — the binary encoding of stored readings (a chunk = readings of one device).
 *
 * The store keeps every reading twice in its life: first as a one-reading chunk in the
 * append log (written at every group commit), then, after compaction, inside a chunk of
 * up to a few hundred readings of one device. Both use this encoding:
 *
 *   chunk   := version:u8 (=1)  count:varint  reading*count
 *   reading := dts:svarint  seqflag:u8  [dseq:svarint]  drecv:svarint  n:varint  value*n
 *   value   := metric_id:varint  value:f64le  score:u16le  flags:varint
 *
 * dts is the difference to the previous reading's ts (to 0 for the first), dseq likewise
 * for seq (seqflag 1 = the reading has a seq), drecv = recv_ms - ts_ms. svarint is the
 * zigzag LEB128 encoding, varint plain LEB128 (as in protocol buffers). Scores are
 * quantised to 1/65535. Metric ids map to names through the store's metric dictionary.
 * About 14 bytes per value and 5 per reading.
 *
 * A second small blob, the chunk's statistics, carries per metric: count, min, max, sum,
 * anomalies and the OR of flags — so long-range charts can use whole chunks without
 * decoding them:
 *   stats := version:u8 (=1)  n:varint  (metric_id:varint count:varint min:f64 max:f64
 *            sum:f64 anomalies:varint flags:varint)*n
 *
 * Decoding never trusts its input: a truncated or corrupted blob yields CANARY_EINVAL,
 * never a read out of bounds. */
#ifndef CANARY_STORE_CHUNK_H
#define CANARY_STORE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_VERSION 1

struct chunk_value {
    uint32_t metric_id;
    double value;
    float score;
    uint32_t flags;
};

struct chunk_reading {
    int64_t ts_ms;
    int64_t recv_ms;
    uint64_t seq;
    bool has_seq;
    uint32_t n_values;
    struct chunk_value *values; /* encoder: input; decoder: caller's array */
};

/* Builds a chunk in a growing buffer it owns. */
struct chunk_encoder {
    uint8_t *buf;
    size_t len, cap;
    uint32_t count;
    int64_t prev_ts;
    uint64_t prev_seq;
};

void chunk_encoder_init(struct chunk_encoder *e);
void chunk_encoder_free(struct chunk_encoder *e);

/* Empties the encoder for a new chunk, keeping its buffer. */
void chunk_encoder_reset(struct chunk_encoder *e);

/* Appends a reading. Returns 0 or CANARY_ENOMEM. */
int chunk_encoder_add(struct chunk_encoder *e, const struct chunk_reading *r);

/* Writes the finished chunk (header + readings) into out (capacity chunk_encoded_size()).
 * Returns the number of bytes written. */
size_t chunk_encoder_emit(const struct chunk_encoder *e, uint8_t *out);

/* Bytes chunk_encoder_emit() will write. */
size_t chunk_encoded_size(const struct chunk_encoder *e);

/* Reads a chunk reading by reading. */
struct chunk_decoder {
    const uint8_t *p, *end;
    uint32_t remaining;
    int64_t prev_ts;
    uint64_t prev_seq;
};

/* Checks the header. Returns 0 or CANARY_EINVAL (unknown version, truncated). */
int chunk_decoder_init(struct chunk_decoder *d, const void *blob, size_t len);

/* Number of readings the chunk says it holds. */
uint32_t chunk_decoder_count(const struct chunk_decoder *d);

/* Decodes the next reading into *r, its values into values[0..cap). Returns 1 for a
 * reading, 0 at the end, CANARY_EINVAL for a corrupt chunk or one whose reading has more
 * than cap values. */
int chunk_decoder_next(struct chunk_decoder *d, struct chunk_reading *r, struct chunk_value *values,
                       uint32_t cap);

/* Per-metric statistics of a chunk. */
struct chunk_stat {
    uint32_t metric_id;
    uint32_t count;
    double min, max, sum;
    uint32_t anomalies;
    uint32_t flags; /* OR of all flags */
};

/* Bytes chunk_stats_encode() needs for n stats (an upper bound). */
size_t chunk_stats_max_size(size_t n);

/* Encodes n stats into out. Returns bytes written. */
size_t chunk_stats_encode(const struct chunk_stat *stats, size_t n, uint8_t *out);

/* Decodes up to cap stats. Returns the number decoded (>= 0) or CANARY_EINVAL. */
int chunk_stats_decode(const void *blob, size_t len, struct chunk_stat *out, size_t cap);

#endif
