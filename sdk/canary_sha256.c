/* canary_sha256.c — SHA-256 (FIPS 180-4 §6.2) and HMAC-SHA256 (RFC 2104); see canary_sha256.h.
 *
 * Written for size and clarity rather than speed: one compression function over a 64-entry
 * message schedule, byte-wise big-endian loads, and a streaming context used only inside this
 * file (HMAC needs two passes). A signed reading hashes about 300 bytes, a few microseconds
 * even on a 160 MHz ESP32, so nothing here is worth unrolling. With CDEV_USE_MBEDTLS the two
 * public functions go through mbedtls' md API (present and unchanged in mbedtls 2.x and 3.x,
 * and in every ESP-IDF), and none of the built-in code is compiled. */
#include "canary_sha256.h"

#include "canary_device.h"

#include <string.h>

void cdev_wipe(void *p, size_t n)
{
    /* A volatile pointer: the stores cannot be proven dead and removed. */
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

#if defined(CDEV_USE_MBEDTLS)

#include <mbedtls/md.h>

int cdev_sha256(const void *data, size_t len, uint8_t out[CDEV_SHA256_LEN])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (md == NULL || mbedtls_md(md, data, len, out) != 0)
        return CDEV_ECRYPTO;
    return CDEV_OK;
}

int cdev_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[CDEV_SHA256_LEN])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (md == NULL || mbedtls_md_hmac(md, key, key_len, data, len, out) != 0)
        return CDEV_ECRYPTO;
    return CDEV_OK;
}

#else /* the built-in implementation */

struct sha256_ctx {
    uint32_t h[8];                    /* chaining state */
    uint64_t total;                   /* bytes hashed so far */
    uint8_t block[CDEV_SHA256_BLOCK]; /* a partial block */
    size_t used;                      /* bytes in block */
    uint32_t w[64];                   /* the message schedule: here, not on compress()'s
                                         stack, so it is wiped once per hash, not per block */
};

/* FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

/* FIPS 180-4 §6.2.2: one 512-bit block into the state. */
static void compress(struct sha256_ctx *ctx, const uint8_t *p)
{
    uint32_t *h = ctx->h, *w = ctx->w;
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ w[t - 15] >> 3;
        uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ w[t - 2] >> 10;
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 =
            k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha256_init(struct sha256_ctx *c)
{
    /* FIPS 180-4 §5.3.3: square roots of the first 8 primes. */
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->total = 0;
    c->used = 0;
}

static void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->used > 0) {
        size_t take = CDEV_SHA256_BLOCK - c->used < len ? CDEV_SHA256_BLOCK - c->used : len;
        memcpy(c->block + c->used, p, take);
        c->used += take;
        p += take;
        len -= take;
        if (c->used < CDEV_SHA256_BLOCK)
            return;
        compress(c, c->block);
        c->used = 0;
    }
    for (; len >= CDEV_SHA256_BLOCK; p += CDEV_SHA256_BLOCK, len -= CDEV_SHA256_BLOCK)
        compress(c, p);
    if (len > 0)
        memcpy(c->block, p, len);
    c->used = len;
}

/* FIPS 180-4 §5.1.1: a 1 bit, zeros, and the message length in bits, big-endian. */
static void sha256_final(struct sha256_ctx *c, uint8_t out[CDEV_SHA256_LEN])
{
    uint64_t bits = c->total * 8;
    c->block[c->used++] = 0x80;
    if (c->used > CDEV_SHA256_BLOCK - 8) {
        memset(c->block + c->used, 0, CDEV_SHA256_BLOCK - c->used);
        compress(c, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, CDEV_SHA256_BLOCK - 8 - c->used);
    for (int i = 0; i < 8; i++)
        c->block[CDEV_SHA256_BLOCK - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(c, c->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
    cdev_wipe(c, sizeof *c);
}

int cdev_sha256(const void *data, size_t len, uint8_t out[CDEV_SHA256_LEN])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
    return CDEV_OK;
}

/* RFC 2104 §2: H(K ^ opad, H(K ^ ipad, text)), K zero-padded to the block size. */
int cdev_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[CDEV_SHA256_LEN])
{
    uint8_t k[CDEV_SHA256_BLOCK], pad[CDEV_SHA256_BLOCK], inner[CDEV_SHA256_LEN];
    memset(k, 0, sizeof k);
    if (key_len > CDEV_SHA256_BLOCK)
        cdev_sha256(key, key_len, k);
    else if (key_len > 0)
        memcpy(k, key, key_len);
    struct sha256_ctx c;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&c);
    sha256_update(&c, pad, sizeof pad);
    sha256_update(&c, data, len);
    sha256_final(&c, inner);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&c);
    sha256_update(&c, pad, sizeof pad);
    sha256_update(&c, inner, sizeof inner);
    sha256_final(&c, out);
    cdev_wipe(k, sizeof k);
    cdev_wipe(pad, sizeof pad);
    cdev_wipe(inner, sizeof inner);
    return CDEV_OK;
}

#endif
