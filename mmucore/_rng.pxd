# Seeded, reproducible pseudo-random numbers for the engine (never libc rand()).
# splitmix64 turns a seed into a state; xorshift64* advances it. The pure-Python
# reference in tests/reference_tlb.py implements the same two functions.
from mmucore._types cimport uint64_t, uint32_t

cdef inline uint64_t splitmix64(uint64_t x) noexcept nogil:
    x = x + <uint64_t>0x9E3779B97F4A7C15
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EB
    return x ^ (x >> 31)

cdef inline uint64_t rng_seed_state(uint64_t seed) noexcept nogil:
    cdef uint64_t s = splitmix64(seed)
    if s == 0:
        s = <uint64_t>0x9E3779B97F4A7C15
    return s

cdef inline uint64_t xorshift64star(uint64_t* state) noexcept nogil:
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>0x2545F4914F6CDD1D

cdef inline uint64_t rng_below(uint64_t* state, uint64_t n) noexcept nogil:
    """A number in [0, n) for n < 2**32: the high 32 bits scaled by n (no division)."""
    return ((xorshift64star(state) >> 32) * n) >> 32
