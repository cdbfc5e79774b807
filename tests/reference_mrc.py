"""Pure-Python reference models of mmucore.stackdist (tests only; slow, obviously correct).

* ``stack_distances(vpns)``: Mattson's LRU stack as a Python list, most recent first.
  The distance of an access is the 1-based position of its page in the stack (0: first
  touch); then the page moves to the top.
* ``set_distances(vpns, sets, ways)``: one such stack per set (page number % sets),
  holding at most ``ways`` pages; a page not in its set's stack has distance 0.
* ``shards_rate`` / ``shards_size``: SHARDS with the engine's hash (murmur3's fmix64 of
  ``vpn ^ splitmix64(seed)``), the same scaled distance ``1 + (d - 1) / R`` and the
  same weighted-bucket histogram, so that the engine must agree exactly.

All of them take page numbers of memory accesses only (the caller drops control ops).
"""
from __future__ import annotations

M64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fmix64(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    return x ^ (x >> 33)


def page_hash(vpn: int, seed: int) -> int:
    return fmix64(vpn ^ splitmix64(seed))


def inv_rate(tmax: int) -> float:
    return 18446744073709551616.0 / (float(tmax) + 1.0)


def stack_distances(vpns):
    """The LRU stack distance of every access (0 = first touch)."""
    stack, out = [], []
    for v in vpns:
        if v in stack:
            d = stack.index(v) + 1
            stack.remove(v)
        else:
            d = 0
        stack.insert(0, v)
        out.append(d)
    return out


def histogram(distances, max_distance=0):
    """(hist list indexed by distance, cold, beyond) as the engine reports them."""
    top = max([d for d in distances if not max_distance or d <= max_distance], default=0)
    hist = [0] * (top + 1)
    cold = beyond = 0
    for d in distances:
        if d == 0:
            cold += 1
        elif max_distance and d > max_distance:
            beyond += 1
        else:
            hist[d] += 1
    return hist, cold, beyond


def lru_misses(vpns, entries):
    """Misses of a fully associative LRU structure of `entries` entries, simulated."""
    stack, misses = [], 0
    for v in vpns:
        if v in stack:
            stack.remove(v)
        else:
            misses += 1
            if len(stack) == entries:
                stack.pop()
        stack.insert(0, v)
    return misses


def set_distances(vpns, sets, ways):
    """Per-set LRU stack distance of every access, 0 when the page is not among the
    `ways` most recent pages of its set (page number % sets)."""
    stacks = [[] for _ in range(sets)]
    out = []
    for v in vpns:
        st = stacks[v % sets]
        if v in st:
            d = st.index(v) + 1
            st.remove(v)
        else:
            d = 0
            if len(st) == ways:
                st.pop()
        st.insert(0, v)
        out.append(d)
    return out


def shards_rate(vpns, tmax, seed=0):
    """Fixed-rate SHARDS: (hist of sampled distances, sampled cold, sampled accesses)."""
    sampled = [v for v in vpns if page_hash(v, seed) <= tmax]
    hist, cold, _ = histogram(stack_distances(sampled))
    return hist, cold, len(sampled)


def shards_size(vpns, sample_size, seed=0, buckets=1 << 12):
    """Fixed-size SHARDS: a dict of the engine's fields (weighted histogram, its bucket
    shift, weight sums, final tmax, sampled accesses, evictions)."""
    tmax = M64
    stack = []                       # sampled pages, most recent first
    whist = [0.0] * buckets
    wshift = 0
    wlen = 0
    weight_sum = wcold = 0.0
    sampled = cold = evictions = 0

    def add(sd, w):
        nonlocal wshift, wlen
        sd = min(sd, 9.0e18)
        b = int(sd) >> wshift
        while b >= buckets:
            half = buckets // 2
            for j in range(half):
                whist[j] = whist[2 * j] + whist[2 * j + 1]
            for j in range(half, buckets):
                whist[j] = 0.0
            wshift += 1
            wlen = (wlen + 1) // 2
            b >>= 1
        whist[b] += w
        wlen = max(wlen, b + 1)

    for v in vpns:
        h = page_hash(v, seed)
        if h > tmax:
            continue
        r = inv_rate(tmax)
        sampled += 1
        weight_sum += r
        if v in stack:
            d = stack.index(v) + 1
            stack.remove(v)
            stack.insert(0, v)
            add(1.0 + float(d - 1) * r, r)
            continue
        stack.insert(0, v)
        cold += 1
        wcold += r
        if len(stack) > sample_size:
            top = max(stack, key=lambda p: page_hash(p, seed))
            tmax = page_hash(top, seed) - 1
            stack.remove(top)
            evictions += 1
    return dict(whist=whist[:wlen], wshift=wshift, weight_sum=weight_sum, wcold=wcold,
                tmax=tmax, sampled=sampled, cold=cold, evictions=evictions)
