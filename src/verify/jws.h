/* jws.h — JWS compact serialization (RFC 7515) with HS256: the signed-reading wire format.
 *
 * A signed message is three base64url parts joined by dots (RFC 7515 §7.1):
 *
 *     BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(HMAC-SHA256(key, first two))
 *
 * with header {"alg":"HS256","kid":"<device id>"} and payload the reading's JSON. This is a
 * deliberately narrow profile of JWS, strict where the RFC is lenient, because every
 * leniency of a verifier is an attacker's choice:
 *  - alg must be exactly "HS256": "none", "HS384", "RS256", ... are refused, so a token
 *    cannot pick its own (weaker) verification;
 *  - base64url without padding, alphabet A-Z a-z 0-9 - _ only (RFC 7515 §2), with zero
 *    trailing bits: one message has one encoding, whitespace and '=' are errors;
 *  - exactly two dots; the header is a JSON object of at most JWS_MAX_HEADER bytes whose
 *    members are among alg, kid, typ, cty, each at most once; "crit" (and any other
 *    member) is refused (§4.1.11: a verifier must reject what it does not understand);
 *  - the signature is exactly 32 bytes and is compared in constant time (CRYPTO_memcmp).
 *
 * Verification is two steps so that the caller can find the key by the token's kid:
 * jws_parse() checks the shape and reads the header, jws_verify_hs256() checks the MAC
 * against one candidate key (a device in a key-rotation overlap has two). Both are pure:
 * no I/O, no globals, and the only allocation is the bounded parse of the header (at most
 * JWS_MAX_HEADER bytes of JSON). The payload is decoded into a caller-given buffer. */
#ifndef CANARY_VERIFY_JWS_H
#define CANARY_VERIFY_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWS_MAX_HEADER 512 /* decoded header bytes */
#define JWS_MAX_KID    128 /* bytes in a kid (READING_MAX_ID_LEN) */
#define JWS_MAC_LEN    32  /* HMAC-SHA256 */
#define JWS_KEY_MIN    32  /* RFC 7518 §3.2: a key at least as long as the hash output */

/* Why a token was refused. Names (jws_error_name) are the codes of the API's errors. */
enum jws_error {
    JWS_OK = 0,
    JWS_EFORMAT,    /* not three parts separated by two dots, or an empty part */
    JWS_EBASE64,    /* a part is not canonical unpadded base64url */
    JWS_ETOO_LARGE, /* header, payload or signature longer than allowed */
    JWS_EHEADER,    /* the header is not a JSON object, or has a duplicate member */
    JWS_EALG_NONE,  /* alg "none": an unsigned token posing as a signed one */
    JWS_EALG,       /* missing alg, or any alg other than HS256 */
    JWS_EKID,       /* missing kid (when required), or one that is not a device id */
    JWS_ECRIT,      /* crit, or another header parameter this profile does not accept */
    JWS_ESIGNATURE, /* the MAC does not match the key */
    JWS_ERROR_COUNT
};

/* "bad_format", "bad_base64", "too_large", "bad_header", "alg_none", "bad_alg", "bad_kid",
 * "unsupported_header", "bad_signature" ("ok" for JWS_OK). */
const char *jws_error_name(enum jws_error e);

/* A parsed token. Pointers point into the caller's token, which must outlive this. */
struct jws_token {
    const char *signing_input; /* header "." payload, as sent: what the MAC covers */
    size_t signing_input_len;
    const char *payload_b64; /* the encoded payload */
    size_t payload_b64_len;
    size_t payload_len; /* decoded length */
    uint8_t mac[JWS_MAC_LEN];
    char kid[JWS_MAX_KID + 1]; /* "" when the header has none */
    bool has_typ;
};

/* Options of jws_parse. */
struct jws_limits {
    size_t max_payload; /* decoded payload bytes */
    bool require_kid;   /* canary's profile: true (RFC 7515's A.1 example has no kid) */
};

/* Checks the shape of token[0..len) and reads its header into *out. Does not check the MAC.
 * Returns JWS_OK or the reason, with a sentence in err. Never reads beyond len. */
enum jws_error jws_parse(const char *token, size_t len, const struct jws_limits *lim,
                         struct jws_token *out, char *err, size_t errlen);

/* Checks the MAC of a parsed token with one key, in constant time. Returns JWS_OK or
 * JWS_ESIGNATURE. */
enum jws_error jws_verify_hs256(const struct jws_token *t, const uint8_t *key, size_t key_len);

/* Decodes the payload into out (cap bytes; jws_parse checked that payload_len fits the
 * limit). Returns the decoded length, or -1 when cap is too small. Writes a NUL after it
 * when there is room. */
long jws_payload(const struct jws_token *t, char *out, size_t cap);

/* Signs payload with key as kid: writes the NUL-terminated compact serialization into out.
 * Returns its length, or -1 when it does not fit in cap or the kid contains a character
 * that would need escaping in JSON (device ids never do). */
long jws_sign_hs256(const char *kid, const void *payload, size_t payload_len, const uint8_t *key,
                    size_t key_len, char *out, size_t cap);

/* The length of a token for a payload of n bytes and a kid of kid_len bytes (for sizing
 * out; an upper bound). */
size_t jws_token_size(size_t payload_len, size_t kid_len);

/* base64url without padding (RFC 7515 §2). encode writes the NUL-terminated text and
 * returns its length (or -1 when cap is too small); decode accepts only canonical input and
 * returns the byte count, or -1 (bad character, impossible length, non-zero trailing bits,
 * or more than cap bytes). */
long b64url_encode(const void *in, size_t len, char *out, size_t cap);
long b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
