/* canary_device.h — the canary device SDK: build a reading, sign it, never reuse a seq.
 *
 * What a device sends to canaryd (docs/SECURITY.md "Wire format", ARCHITECTURE.md):
 *
 *     {"device":"kitchen-1","seq":1042,"ts":1763676000123,"values":{"gas_ppm":412.5}}
 *
 * signed as a JWS compact serialization (RFC 7515) with alg HS256 and kid = the device id,
 * under the 32-byte key `canary device add` prints as 43 base64url characters. This library
 * does exactly that and nothing else; the transport (HTTP, MQTT) is the application's, see
 * sdk/posix/ and sdk/esp32/.
 *
 * Promises:
 *  - portable C99 using only the standard C library (string.h, stdio.h's snprintf and
 *    stdlib.h's strtod for doubles, math.h's isfinite): it builds for ESP-IDF, bare-metal
 *    newlib and POSIX alike; the build compiles it with -std=c99 -pedantic -Werror;
 *  - no heap: every output goes into a buffer the caller gives, with its size; nothing is
 *    ever written beyond it, and a result that does not fit is CDEV_ENOSPACE, never a cut;
 *  - no globals and no hidden state: everything lives in the structs below, so two devices
 *    (or a gateway for many) can run side by side; nothing here is thread-safe per struct;
 *  - what it builds is what canaryd accepts: the device id and metric names are checked by
 *    canaryd's own rules, values must be finite, and the JSON is RFC 8259 with no whitespace.
 * Every function returns CDEV_OK (0) or a negative CDEV_E* code (cdev_error_name names it);
 * functions that produce text return its length (>= 0) or a negative code.
 *
 * The seq rule: canaryd keeps each device's highest seq and refuses a seq it has seen
 * (a replay). A device must therefore never send a seq twice, across reboots too, with
 * little flash wear. struct cdev_seq reserves seqs in blocks: before it hands out a seq at
 * or beyond the persisted mark, it persists mark + block through the platform's hook and
 * only then continues. After a reboot, counting resumes from the persisted mark, skipping
 * at most a block of never-sent seqs (canaryd accepts gaps). One flash write per block. */
#ifndef CANARY_DEVICE_H
#define CANARY_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------------------------ */

enum cdev_error {
    CDEV_OK = 0,
    CDEV_ENOSPACE = -1,   /* the output buffer is too small: nothing was added */
    CDEV_EDEVICE = -2,    /* the device id is not valid: 1..CDEV_MAX_DEVICE_LEN of
                             [A-Za-z0-9._:-], starting with a letter or digit */
    CDEV_EMETRIC = -3,    /* the metric name is not snake_case: 1..CDEV_MAX_METRIC_LEN of
                             [a-z0-9_], starting with a letter */
    CDEV_EVALUE = -4,     /* the value is NaN or infinite, or the fixed-point form is out of
                             range (more than 18 decimals) */
    CDEV_EDUPLICATE = -5, /* the metric is already in this reading */
    CDEV_EEMPTY = -6,     /* a reading must hold at least one metric */
    CDEV_ETOO_MANY = -7,  /* more than CDEV_MAX_METRICS metrics in one reading */
    CDEV_EKEY = -8,       /* the key is not 43 canonical base64url characters (32 bytes) */
    CDEV_ESEQ = -9,       /* seq would reach 2^53 (canaryd takes 0..2^53-1), or the seq
                             counter was not started */
    CDEV_ESTORE = -10,    /* the platform could not read or persist the seq mark: no seq is
                             handed out (sending one could repeat after a reboot) */
    CDEV_EARG = -11,      /* a NULL pointer, or a call out of order (add before begin) */
    CDEV_ECRYPTO = -12,   /* the crypto backend failed (mbedtls builds only) */
    CDEV_ENOTFOUND = -13  /* seq store hooks only: no mark has ever been persisted */
};

/* "ok", "no_space", "bad_device", "bad_metric", "bad_value", "duplicate_metric", "empty",
 * "too_many_metrics", "bad_key", "seq_exhausted", "store_failed", "bad_argument",
 * "crypto_failed", "not_found"; "unknown" for anything else. Never NULL. */
const char *cdev_error_name(int rc);

/* ---- limits ------------------------------------------------------------------------------ */

#define CDEV_KEY_LEN        32 /* HMAC key bytes */
#define CDEV_KEY_TEXT_LEN   43 /* its base64url text, as `canary device add` prints it */
#define CDEV_MAX_DEVICE_LEN 64 /* canaryd's default ingest.max_device_len (and Mosquitto's) */
#define CDEV_MAX_METRIC_LEN 64 /* canaryd's ingest.max_metric_len default */
#define CDEV_MAX_METRICS    32 /* canaryd's default ingest.max_metrics */
#define CDEV_SEQ_MAX        9007199254740992ULL /* 2^53: seq and ts must stay below it */

/* Largest text of one value: "-1.7976931348623157e+308" and the like. */
#define CDEV_MAX_NUMBER_LEN 32

/* ---- names ------------------------------------------------------------------------------- */

/* True when s is a device id canaryd accepts (see CDEV_EDEVICE). */
bool cdev_device_id_valid(const char *s);

/* True when s is a metric name canaryd accepts (see CDEV_EMETRIC). */
bool cdev_metric_name_valid(const char *s);

/* Writes s as a JSON string (quotes included, RFC 8259 §7: '"', '\\' and control characters
 * escaped, other bytes as they are) into out[0..cap), NUL-terminated. Returns the length, or
 * CDEV_ENOSPACE (out then holds "" when cap > 0). For the free text a device sends besides
 * readings, e.g. the "error" of a command answer on canary/<id>/cmd/ack. */
long cdev_json_string(const char *s, char *out, size_t cap);

/* Writes a finite double as a JSON number that reads back as exactly the same double: the
 * first of 15, 16 or 17 significant digits that does, trailing zeros dropped ("24.1", not
 * "24.100000000000001"; "1e+21"; -0 as "0"), NUL-terminated. Returns the length,
 * CDEV_EVALUE for NaN and infinities, CDEV_ENOSPACE (out is then ""). */
long cdev_json_number(double v, char *out, size_t cap);

/* ---- a reading --------------------------------------------------------------------------- */

/* A reading being built in a caller's buffer. Fields are private to the library, except
 * seq, which a caller may read (to log it). */
struct cdev_reading {
    uint64_t seq;       /* the reading's seq */
    char *buf;          /* the caller's buffer */
    size_t cap;         /* its size */
    size_t len;         /* JSON written so far, without the closing "}}" */
    size_t values_at;   /* offset of the first metric's key (after "values":{) */
    unsigned n_metrics; /* metrics added */
    bool open;          /* between begin and end */
};

/* Starts a reading of device with seq and, when ts_ms > 0, ts (Unix milliseconds; 0 means
 * "the clock is not set": ts is left out and canaryd stamps the reading with its receive
 * time, which the wire format allows). Buffer sizing: room for the whole reading plus its
 * NUL; CDEV_ENOSPACE from any call means "a bigger buffer". Errors: CDEV_EDEVICE, CDEV_ESEQ
 * (seq >= 2^53), CDEV_EVALUE (ts_ms >= 2^53), CDEV_ENOSPACE, CDEV_EARG. */
int cdev_reading_begin(struct cdev_reading *r, char *buf, size_t cap, const char *device,
                       uint64_t seq, int64_t ts_ms);

/* Adds a metric. Each add is all or nothing: on an error the reading is as it was, so a
 * device can skip a sensor that failed (a NaN from a DHT22 read error is CDEV_EVALUE) and
 * still send the others. Errors: CDEV_EMETRIC, CDEV_EVALUE, CDEV_EDUPLICATE,
 * CDEV_ETOO_MANY, CDEV_ENOSPACE, CDEV_EARG. */
int cdev_reading_add(struct cdev_reading *r, const char *metric, double value);

/* Adds scaled / 10^decimals exactly, with integer arithmetic only (no floating-point
 * formatting): what sensors report (a DHT22 gives tenths: 241, 1 -> 24.1). decimals <= 18. */
int cdev_reading_add_fixed(struct cdev_reading *r, const char *metric, int64_t scaled,
                           unsigned decimals);

/* Adds a 0/1 metric (flame, motion, valve_open) as the number 0 or 1. */
int cdev_reading_add_flag(struct cdev_reading *r, const char *metric, bool on);

/* Closes the reading. Returns its JSON length (buf holds it, NUL-terminated), CDEV_EEMPTY
 * when no metric was added, or CDEV_EARG. Never CDEV_ENOSPACE: begin and add keep room for
 * the end. */
long cdev_reading_end(struct cdev_reading *r);

/* ---- keys and signatures ----------------------------------------------------------------- */

/* Overwrites n bytes of p with zeros in a way the compiler may not drop (keys, key text,
 * hash state; canary_sha256.c). */
void cdev_wipe(void *p, size_t n);

/* Decodes the 43-character key text (exactly; no whitespace, no padding) into key.
 * Returns CDEV_OK or CDEV_EKEY (key is then zeroed). */
int cdev_key_parse(const char *text, uint8_t key[CDEV_KEY_LEN]);

/* Signs payload as device: writes the JWS compact serialization
 * BASE64URL({"alg":"HS256","kid":"<device>"}) "." BASE64URL(payload) "." BASE64URL(MAC),
 * unpadded, NUL-terminated, into out[0..cap). Returns its length; CDEV_EDEVICE,
 * CDEV_ENOSPACE, CDEV_EARG, CDEV_ECRYPTO. payload and out must not overlap. */
long cdev_jws_sign(const char *device, const void *payload, size_t payload_len,
                   const uint8_t key[CDEV_KEY_LEN], char *out, size_t cap);

/* The exact size (NUL included) of the token cdev_jws_sign makes for a device id of
 * device_len bytes and a payload of payload_len bytes. */
size_t cdev_jws_size(size_t device_len, size_t payload_len);

/* base64url without padding (RFC 7515 §2), NUL-terminated. Returns the length or
 * CDEV_ENOSPACE. */
long cdev_b64url_encode(const void *in, size_t len, char *out, size_t cap);

/* ---- seq that survives reboots ----------------------------------------------------------- */

/* The platform's persistent storage of one number, the seq mark (NVS on ESP32, a file on
 * POSIX: sdk/posix/cdev_seq_file.h, sdk/esp32/.../cdev_seq_nvs.h). */
struct cdev_seq_store {
    /* Reads the persisted mark into *mark: CDEV_OK, CDEV_ENOTFOUND when none was ever
     * written (a new device), anything else (CDEV_ESTORE) when storage cannot be read or
     * holds garbage — the counter then refuses to start rather than begin again at 0. */
    int (*load)(void *ctx, uint64_t *mark);
    /* Persists mark durably (it must survive a power cut once this returns CDEV_OK), as a
     * whole: after a crash in the middle, load returns the old mark or the new, nothing
     * else. */
    int (*save)(void *ctx, uint64_t mark);
    void *ctx;
};

/* A seq counter. Fields are private to the library. */
struct cdev_seq {
    const struct cdev_seq_store *store;
    uint64_t next;     /* the next seq to hand out */
    uint64_t reserved; /* the persisted mark: seqs from here on were never handed out */
    uint32_t block;    /* seqs reserved per save */
    bool started;
};

/* Starts the counter: loads the mark and resumes from it, or, for a new device (no mark),
 * from first_seq (usually 1; after the device's storage was erased, something above the
 * seq canaryd last saw from it, e.g. the wall clock in ms). block: seqs per save (>= 1;
 * 100 is one flash write per 100 readings). Returns CDEV_OK, CDEV_ESTORE, CDEV_ESEQ,
 * CDEV_EARG. Writes nothing yet. */
int cdev_seq_start(struct cdev_seq *s, const struct cdev_seq_store *store, uint32_t block,
                   uint64_t first_seq);

/* Hands out the next seq. When it reaches the persisted mark it first saves a mark one
 * block further and fails with CDEV_ESTORE if that does not succeed (call again later: no
 * seq was consumed). Returns CDEV_OK, CDEV_ESTORE, CDEV_ESEQ (2^53 reached), CDEV_EARG. */
int cdev_seq_next(struct cdev_seq *s, uint64_t *seq);

/* ---- a device: everything above in one place --------------------------------------------- */

/* The wall clock in Unix milliseconds, or 0 while it is not set (no SNTP answer yet). */
typedef int64_t (*cdev_clock_fn)(void *ctx);

struct cdev_device {
    char id[CDEV_MAX_DEVICE_LEN + 1];
    uint8_t key[CDEV_KEY_LEN];
    struct cdev_seq seq;
    cdev_clock_fn clock; /* NULL: never send ts */
    void *clock_ctx;
};

/* Sets up a device from its id, its key text and its seq store (block and first_seq as for
 * cdev_seq_start). Returns CDEV_OK, CDEV_EDEVICE, CDEV_EKEY, CDEV_ESTORE, CDEV_ESEQ,
 * CDEV_EARG. */
int cdev_device_init(struct cdev_device *d, const char *id, const char *key_text,
                     const struct cdev_seq_store *store, uint32_t block, uint64_t first_seq,
                     cdev_clock_fn clock, void *clock_ctx);

/* Begins a reading of this device with the next seq and the clock's ts (see
 * cdev_reading_begin). The seq is consumed even if the reading is never sent. */
int cdev_device_begin(struct cdev_device *d, struct cdev_reading *r, char *buf, size_t cap);

/* Ends the reading and signs it into out: returns the token's length or an error. */
long cdev_device_sign(struct cdev_device *d, struct cdev_reading *r, char *out, size_t cap);

/* Zeroes the key (cdev_wipe) and everything else. */
void cdev_device_clear(struct cdev_device *d);

#endif
