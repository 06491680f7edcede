/* canary_device.c — readings as JSON and their JWS HS256 signature, in caller-given buffers;
 * see canary_device.h.
 *
 * Everything is written forwards into one buffer with its size checked before each write,
 * so nothing can run past the end, and every public call either completes or leaves the
 * buffer's meaningful part as it was. The JSON follows ARCHITECTURE.md's order (device, seq,
 * ts, values) with no whitespace; names are checked against canaryd's own rules (src/core/
 * metric.c) so what is built is what is accepted, and strings are escaped anyway (RFC 8259
 * §7) because cdev_json_string is also for free text. */
#include "canary_device.h"

#include "canary_sha256.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes kept free after the JSON written so far: the closing "}}" and the NUL. */
#define TAIL 3

const char *cdev_error_name(int rc)
{
    switch (rc) {
    case CDEV_OK:
        return "ok";
    case CDEV_ENOSPACE:
        return "no_space";
    case CDEV_EDEVICE:
        return "bad_device";
    case CDEV_EMETRIC:
        return "bad_metric";
    case CDEV_EVALUE:
        return "bad_value";
    case CDEV_EDUPLICATE:
        return "duplicate_metric";
    case CDEV_EEMPTY:
        return "empty";
    case CDEV_ETOO_MANY:
        return "too_many_metrics";
    case CDEV_EKEY:
        return "bad_key";
    case CDEV_ESEQ:
        return "seq_exhausted";
    case CDEV_ESTORE:
        return "store_failed";
    case CDEV_EARG:
        return "bad_argument";
    case CDEV_ECRYPTO:
        return "crypto_failed";
    case CDEV_ENOTFOUND:
        return "not_found";
    default:
        return "unknown";
    }
}

/* ---- names ------------------------------------------------------------------------------- */

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z');
}

/* The same rule as canaryd's device_id_valid (src/core/metric.c). */
bool cdev_device_id_valid(const char *s)
{
    if (s == NULL || !is_alnum(s[0]))
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= CDEV_MAX_DEVICE_LEN)
            return false;
        if (!is_alnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
            return false;
    }
    return true;
}

/* The same rule as canaryd's metric_name_valid (src/core/metric.c). */
bool cdev_metric_name_valid(const char *s)
{
    if (s == NULL || !is_lower(s[0]))
        return false;
    for (size_t n = 0; s[n] != '\0'; n++) {
        if (n >= CDEV_MAX_METRIC_LEN)
            return false;
        if (!is_lower(s[n]) && !is_digit(s[n]) && s[n] != '_')
            return false;
    }
    return true;
}

/* ---- JSON text ----------------------------------------------------------------------------- */

long cdev_json_string(const char *s, char *out, size_t cap)
{
    static const char hexd[] = "0123456789abcdef";
    if (s == NULL || out == NULL)
        return CDEV_EARG;
    size_t o = 0;
    for (size_t i = 0;; i++) {
        unsigned char c = (unsigned char)(i == 0 ? '"' : s[i - 1]);
        char esc[7];
        size_t n = 0;
        if (i > 0 && c == '\0') {
            esc[n++] = '"';
        } else if (i > 0 && (c == '"' || c == '\\')) {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (i > 0 && c < 0x20) {
            /* RFC 8259 §7: control characters must be escaped; the short forms where JSON
             * has one. */
            const char *shortf = c == '\b'   ? "\\b"
                                 : c == '\f' ? "\\f"
                                 : c == '\n' ? "\\n"
                                 : c == '\r' ? "\\r"
                                 : c == '\t' ? "\\t"
                                             : NULL;
            if (shortf != NULL) {
                esc[n++] = shortf[0];
                esc[n++] = shortf[1];
            } else {
                memcpy(esc, "\\u00", 4);
                n = 4;
                esc[n++] = hexd[c >> 4];
                esc[n++] = hexd[c & 15];
            }
        } else {
            esc[n++] = (char)c;
        }
        if (o + n + 1 > cap) {
            if (cap > 0)
                out[0] = '\0';
            return CDEV_ENOSPACE;
        }
        memcpy(out + o, esc, n);
        o += n;
        if (i > 0 && c == '\0')
            break;
    }
    out[o] = '\0';
    return (long)o;
}

/* Copies the C library's %g text into JSON form: whatever the locale uses as its decimal
 * point (a ',' under some LC_NUMERIC) becomes '.', so a device that calls setlocale still
 * sends valid JSON. */
static size_t json_from_printf(const char *in, char *out)
{
    size_t o = 0;
    bool in_point = false;
    for (; *in != '\0'; in++) {
        char c = *in;
        if (is_digit(c) || c == '-' || c == '+' || c == 'e') {
            out[o++] = c;
            in_point = false;
        } else if (!in_point) {
            out[o++] = '.';
            in_point = true;
        }
    }
    out[o] = '\0';
    return o;
}

long cdev_json_number(double v, char *out, size_t cap)
{
    if (out == NULL)
        return CDEV_EARG;
    if (cap > 0)
        out[0] = '\0';
    if (!isfinite(v))
        return CDEV_EVALUE;
    char tmp[CDEV_MAX_NUMBER_LEN + 8], text[CDEV_MAX_NUMBER_LEN + 8];
    size_t n;
    if (v == 0) {
        memcpy(text, "0", 2); /* -0 too: canaryd stores no sign of zero */
        n = 1;
    } else {
        /* The shortest of 15, 16, 17 significant digits that reads back as v (17 always
         * does, IEEE 754 §5.12.2); %g drops trailing zeros, so 24.1 is "24.1". */
        int prec = 15;
        for (;; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (prec == 17 || strtod(tmp, NULL) == v)
                break;
        }
        n = json_from_printf(tmp, text);
    }
    if (n + 1 > cap)
        return CDEV_ENOSPACE;
    memcpy(out, text, n + 1);
    return (long)n;
}

/* Decimal text of an unsigned 64-bit number into out (at least 21 bytes). */
static size_t u64_text(uint64_t v, char *out)
{
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* scaled / 10^decimals as a JSON number, exactly, without trailing fraction zeros. */
static long fixed_text(int64_t scaled, unsigned decimals, char *out)
{
    if (decimals > 18)
        return CDEV_EVALUE;
    /* |INT64_MIN| does not fit an int64_t; computed in unsigned arithmetic. */
    uint64_t mag = scaled < 0 ? (uint64_t)0 - (uint64_t)scaled : (uint64_t)scaled;
    uint64_t pow10 = 1;
    for (unsigned i = 0; i < decimals; i++)
        pow10 *= 10;
    uint64_t whole = mag / pow10, frac = mag % pow10;
    size_t o = 0;
    if (mag != 0 && scaled < 0)
        out[o++] = '-';
    o += u64_text(whole, out + o);
    if (frac != 0) {
        char digits[20];
        unsigned nd = decimals;
        while (frac % 10 == 0) { /* drop trailing zeros: 24.10 -> 24.1 */
            frac /= 10;
            nd--;
        }
        size_t fn = u64_text(frac, digits);
        out[o++] = '.';
        for (size_t z = fn; z < nd; z++) /* leading zeros of the fraction: 0.05 */
            out[o++] = '0';
        memcpy(out + o, digits, fn);
        o += fn;
    }
    out[o] = '\0';
    return (long)o;
}

/* ---- a reading --------------------------------------------------------------------------- */

/* Appends n bytes when they fit with the tail kept free. */
static bool put(struct cdev_reading *r, const char *s, size_t n)
{
    if (r->len + n + TAIL > r->cap)
        return false;
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    return true;
}

static bool put_str(struct cdev_reading *r, const char *s)
{
    return put(r, s, strlen(s));
}

static bool put_u64(struct cdev_reading *r, uint64_t v)
{
    char t[24];
    return put(r, t, u64_text(v, t));
}

int cdev_reading_begin(struct cdev_reading *r, char *buf, size_t cap, const char *device,
                       uint64_t seq, int64_t ts_ms)
{
    if (r == NULL || buf == NULL)
        return CDEV_EARG;
    memset(r, 0, sizeof *r);
    if (cap > 0)
        buf[0] = '\0';
    if (!cdev_device_id_valid(device))
        return CDEV_EDEVICE;
    if (seq >= CDEV_SEQ_MAX)
        return CDEV_ESEQ;
    if (ts_ms > 0 && (uint64_t)ts_ms >= CDEV_SEQ_MAX)
        return CDEV_EVALUE;
    r->buf = buf;
    r->cap = cap;
    r->seq = seq;
    /* The id needs no escaping (checked above), but it goes through the escaper all the
     * same: one code path for every string. */
    char id[CDEV_MAX_DEVICE_LEN + 3];
    long idn = cdev_json_string(device, id, sizeof id);
    bool ok = idn > 0 && put_str(r, "{\"device\":") && put(r, id, (size_t)idn) &&
              put_str(r, ",\"seq\":") && put_u64(r, seq);
    if (ok && ts_ms > 0)
        ok = put_str(r, ",\"ts\":") && put_u64(r, (uint64_t)ts_ms);
    ok = ok && put_str(r, ",\"values\":{");
    if (!ok) {
        if (cap > 0)
            buf[0] = '\0';
        r->len = 0;
        return CDEV_ENOSPACE;
    }
    r->buf[r->len] = '\0';
    r->values_at = r->len;
    r->open = true;
    return CDEV_OK;
}

/* True when metric is already a key of the reading's values. Keys follow '{' or ',' and
 * values are numbers, so "name": preceded by one of those is a key and nothing else. */
static bool has_metric(const struct cdev_reading *r, const char *metric, size_t n)
{
    for (size_t i = r->values_at; i + n + 2 <= r->len; i++) {
        char before = r->buf[i - 1];
        if (r->buf[i] == '"' && (before == '{' || before == ',') &&
            memcmp(r->buf + i + 1, metric, n) == 0 && r->buf[i + 1 + n] == '"')
            return true;
    }
    return false;
}

/* Adds "metric":number (number already formatted) all or nothing. */
static int add_text(struct cdev_reading *r, const char *metric, const char *num, size_t num_len)
{
    size_t n = strlen(metric);
    if (has_metric(r, metric, n))
        return CDEV_EDUPLICATE;
    if (r->n_metrics >= CDEV_MAX_METRICS)
        return CDEV_ETOO_MANY;
    size_t need = (r->n_metrics > 0 ? 1 : 0) + n + 3 + num_len;
    if (r->len + need + TAIL > r->cap)
        return CDEV_ENOSPACE;
    if (r->n_metrics > 0)
        put(r, ",", 1);
    put(r, "\"", 1);
    put(r, metric, n);
    put(r, "\":", 2);
    put(r, num, num_len);
    r->buf[r->len] = '\0';
    r->n_metrics++;
    return CDEV_OK;
}

/* The checks every add shares, before any formatting. */
static int add_check(const struct cdev_reading *r, const char *metric)
{
    if (r == NULL || !r->open)
        return CDEV_EARG;
    if (!cdev_metric_name_valid(metric))
        return CDEV_EMETRIC;
    return CDEV_OK;
}

int cdev_reading_add(struct cdev_reading *r, const char *metric, double value)
{
    int rc = add_check(r, metric);
    if (rc != CDEV_OK)
        return rc;
    char num[CDEV_MAX_NUMBER_LEN];
    long n = cdev_json_number(value, num, sizeof num);
    if (n < 0)
        return (int)n;
    return add_text(r, metric, num, (size_t)n);
}

int cdev_reading_add_fixed(struct cdev_reading *r, const char *metric, int64_t scaled,
                           unsigned decimals)
{
    int rc = add_check(r, metric);
    if (rc != CDEV_OK)
        return rc;
    char num[CDEV_MAX_NUMBER_LEN + 8];
    long n = fixed_text(scaled, decimals, num);
    if (n < 0)
        return (int)n;
    return add_text(r, metric, num, (size_t)n);
}

int cdev_reading_add_flag(struct cdev_reading *r, const char *metric, bool on)
{
    int rc = add_check(r, metric);
    if (rc != CDEV_OK)
        return rc;
    return add_text(r, metric, on ? "1" : "0", 1);
}

long cdev_reading_end(struct cdev_reading *r)
{
    if (r == NULL || !r->open)
        return CDEV_EARG;
    if (r->n_metrics == 0)
        return CDEV_EEMPTY;
    /* begin and every add kept TAIL bytes free. */
    memcpy(r->buf + r->len, "}}", 3);
    r->len += 2;
    r->open = false;
    return (long)r->len;
}

/* ---- base64url, keys, JWS ------------------------------------------------------------------ */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

long cdev_b64url_encode(const void *in, size_t len, char *out, size_t cap)
{
    if ((in == NULL && len > 0) || out == NULL)
        return CDEV_EARG;
    const uint8_t *p = in;
    size_t need = b64url_len(len);
    if (need + 1 > cap) {
        if (cap > 0)
            out[0] = '\0';
        return CDEV_ENOSPACE;
    }
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i > 0) {
        uint32_t v = (uint32_t)p[i] << 16 | (len - i == 2 ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        if (len - i == 2)
            out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return (long)o;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int cdev_key_parse(const char *text, uint8_t key[CDEV_KEY_LEN])
{
    if (key == NULL)
        return CDEV_EARG;
    memset(key, 0, CDEV_KEY_LEN);
    if (text == NULL)
        return CDEV_EKEY;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < CDEV_KEY_TEXT_LEN; i++) {
        int v = b64url_value(text[i]); /* text[i] == '\0' stops here: -1 */
        if (v < 0)
            goto bad;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            key[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 43 characters carry 258 bits: the last 2 must be zero (canonical, as canaryd's
     * decoder demands), and nothing may follow. */
    if (acc != 0 || text[CDEV_KEY_TEXT_LEN] != '\0' || o != CDEV_KEY_LEN)
        goto bad;
    return CDEV_OK;
bad:
    cdev_wipe(key, CDEV_KEY_LEN);
    return CDEV_EKEY;
}

static const char jws_header_head[] = "{\"alg\":\"HS256\",\"kid\":\"";
static const char jws_header_tail[] = "\"}";

size_t cdev_jws_size(size_t device_len, size_t payload_len)
{
    size_t header = sizeof jws_header_head - 1 + device_len + sizeof jws_header_tail - 1;
    return b64url_len(header) + 1 + b64url_len(payload_len) + 1 + b64url_len(CDEV_SHA256_LEN) + 1;
}

long cdev_jws_sign(const char *device, const void *payload, size_t payload_len,
                   const uint8_t key[CDEV_KEY_LEN], char *out, size_t cap)
{
    if (out == NULL || key == NULL || (payload == NULL && payload_len > 0))
        return CDEV_EARG;
    if (cap > 0)
        out[0] = '\0';
    if (!cdev_device_id_valid(device))
        return CDEV_EDEVICE;
    size_t id_len = strlen(device);
    if (cdev_jws_size(id_len, payload_len) > cap)
        return CDEV_ENOSPACE;
    /* The header as RFC 7515 §4 and docs/SECURITY.md give it; a valid id needs no escape. */
    char header[sizeof jws_header_head + CDEV_MAX_DEVICE_LEN + sizeof jws_header_tail];
    size_t hn = 0;
    memcpy(header, jws_header_head, sizeof jws_header_head - 1);
    hn += sizeof jws_header_head - 1;
    memcpy(header + hn, device, id_len);
    hn += id_len;
    memcpy(header + hn, jws_header_tail, sizeof jws_header_tail - 1);
    hn += sizeof jws_header_tail - 1;
    /* Sizes were checked above, so none of these can fail. */
    size_t o = (size_t)cdev_b64url_encode(header, hn, out, cap);
    out[o++] = '.';
    o += (size_t)cdev_b64url_encode(payload, payload_len, out + o, cap - o);
    uint8_t mac[CDEV_SHA256_LEN];
    int rc = cdev_hmac_sha256(key, CDEV_KEY_LEN, out, o, mac);
    if (rc != CDEV_OK) {
        out[0] = '\0';
        return rc;
    }
    out[o++] = '.';
    o += (size_t)cdev_b64url_encode(mac, sizeof mac, out + o, cap - o);
    cdev_wipe(mac, sizeof mac);
    return (long)o;
}

/* ---- a device ------------------------------------------------------------------------------ */

int cdev_device_init(struct cdev_device *d, const char *id, const char *key_text,
                     const struct cdev_seq_store *store, uint32_t block, uint64_t first_seq,
                     cdev_clock_fn clock, void *clock_ctx)
{
    if (d == NULL)
        return CDEV_EARG;
    memset(d, 0, sizeof *d);
    if (!cdev_device_id_valid(id))
        return CDEV_EDEVICE;
    memcpy(d->id, id, strlen(id) + 1);
    int rc = cdev_key_parse(key_text, d->key);
    if (rc == CDEV_OK)
        rc = cdev_seq_start(&d->seq, store, block, first_seq);
    if (rc != CDEV_OK) {
        cdev_device_clear(d);
        return rc;
    }
    d->clock = clock;
    d->clock_ctx = clock_ctx;
    return CDEV_OK;
}

int cdev_device_begin(struct cdev_device *d, struct cdev_reading *r, char *buf, size_t cap)
{
    if (d == NULL || r == NULL || buf == NULL)
        return CDEV_EARG;
    uint64_t seq;
    int rc = cdev_seq_next(&d->seq, &seq);
    if (rc != CDEV_OK)
        return rc;
    int64_t ts = d->clock != NULL ? d->clock(d->clock_ctx) : 0;
    return cdev_reading_begin(r, buf, cap, d->id, seq, ts > 0 ? ts : 0);
}

long cdev_device_sign(struct cdev_device *d, struct cdev_reading *r, char *out, size_t cap)
{
    if (d == NULL || r == NULL)
        return CDEV_EARG;
    long n = cdev_reading_end(r);
    if (n < 0)
        return n;
    return cdev_jws_sign(d->id, r->buf, (size_t)n, d->key, out, cap);
}

void cdev_device_clear(struct cdev_device *d)
{
    if (d != NULL)
        cdev_wipe(d, sizeof *d);
}
