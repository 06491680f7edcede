/* rng.h — deterministic pseudo-random numbers: xoshiro256** (Blackman & Vigna,
 * https://prng.di.unimi.it/) seeded through splitmix64.
 *
 * For simulation, training and tests: the same seed gives the same sequence on every
 * machine. Not for secrets (keys, tokens, nonces): use the operating system's generator.
 * Header-only and inline: the draw is on hot paths (tree growth, fleet simulation). */
#ifndef CANARY_CORE_RNG_H
#define CANARY_CORE_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* splitmix64's output function: a bijective 64-bit mixer. */
static inline uint64_t rng_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* splitmix64: advances *state and returns its next output. */
static inline uint64_t rng_splitmix64(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return rng_mix64(*state);
}

/* Fills the state from a splitmix64 sequence started at x (never all zero). */
static inline void rng_seed_state(struct rng *r, uint64_t x)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
}

static inline uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* The next 64 random bits. */
static inline uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1), 53 bits. */
static inline double rng_uniform(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
