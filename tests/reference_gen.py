"""Pure-Python reference generators: the oracle of mmucore.gen (tests/test_gen_*.py).

Each function returns ``(addr, op, size)`` as lists for the whole stream of a workload
given by the same arguments as ``pyapi.workloads`` (already-normalised values), written
as the obvious loops of docs/workloads.md, with Python integers (masked to 64 bits
where the engine wraps) and the same libm calls for the zipf sampler. Slow: for small
sizes only. The zipf bin table is an input (``pyapi.workloads.zipf_table``), as are the
salts (``mmucore.gen.SALTS``); everything else is recomputed here.
"""
import math

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
LOAD, STORE, MODIFY = 0, 1, 3
SALTS = {"uniform_slot": 1, "uniform_op": 2, "gups": 3, "zipf_draw": 4, "zipf_perm": 5,
         "chase": 6, "bfs_src": 7, "bfs_dst": 8}
REGION_ALIGN = 2 << 20


def splitmix64(x):
    x = (x + GOLDEN) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def key_of(seed, salt):
    return splitmix64(splitmix64(seed) ^ salt)


def draw(key, i):
    return splitmix64((key + i * GOLDEN) & M64)


def sub_draw(sub, t):
    """Draw t >= 1 of an access's sub-stream: wyrand's t-th output from state sub."""
    a = (sub + t * 0xA0761D6478BD642F) & M64
    p = a * (a ^ 0xE7037ED1A0B428DB)
    return (p >> 64) ^ (p & M64)


def mulhi(a, b):
    return (a * b) >> 64


def unit(x):
    return (x >> 11) * (1.0 / 9007199254740992.0)


def layout(base, sizes):
    out, off = {}, 0
    for name, nbytes in sizes:
        off = -(-off // REGION_ALIGN) * REGION_ALIGN
        out[name] = base + off
        off += nbytes
    return out


# ---------------------------------------------------------------------------- streams
def uniform(n, footprint, seed, base, align, store_fraction):
    slots = footprint // align
    kslot, kop = key_of(seed, SALTS["uniform_slot"]), key_of(seed, SALTS["uniform_op"])
    thresh = int(round(store_fraction * (1 << 53)))
    addr, op = [], []
    for i in range(n):
        addr.append(base + mulhi(draw(kslot, i), slots) * align)
        op.append(STORE if thresh and (draw(kop, i) >> 11) < thresh else LOAD)
    return addr, op, [align] * n


def gups(n_updates, table_bytes, seed, base):
    k = key_of(seed, SALTS["gups"])
    addr = [base + 8 * mulhi(draw(k, i), table_bytes // 8) for i in range(n_updates)]
    return addr, [MODIFY] * n_updates, [8] * n_updates


def stride(n, footprint, stride, base, elem_bytes):
    return ([base + (i * stride) % footprint for i in range(n)], [LOAD] * n,
            [elem_bytes] * n)


# zipf: Commons RNG's helpers, with the same operations in the same order
def _helper1(x):
    if abs(x) > 1e-8:
        return math.log1p(x) / x
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))


def _helper2(x):
    if abs(x) > 1e-8:
        return math.expm1(x) / x
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))


def zipf_H(x, a):
    lx = math.log(x)
    return _helper2((1.0 - a) * lx) * lx


def zipf_h(x, a):
    return math.exp(-a * math.log(x))


def zipf_Hinv(x, a):
    t = x * (1.0 - a)
    if t < -1.0:
        t = -1.0
    return math.exp(_helper1(t) * x)


def zipf_rank_ri(pages, a, sub):
    """Rejection-inversion (Hormann & Derflinger 1996; Commons RNG form)."""
    hx1 = zipf_H(1.5, a) - 1.0
    hxn = zipf_H(pages + 0.5, a)
    span = hx1 - hxn
    s = 2.0 - zipf_Hinv(zipf_H(2.5, a) - zipf_h(2.0, a), a)
    t = 1
    while True:
        u = hxn + unit(sub_draw(sub, t + 1)) * span
        t += 1
        x = zipf_Hinv(u, a)
        kd = x + 0.5
        if kd < 1.0:
            k = 1
        elif kd >= float(pages):
            k = pages
        else:
            k = int(kd)
        if k - x <= s or u >= zipf_H(k + 0.5, a) - zipf_h(float(k), a):
            return k


def zipf_rank_table(table, a, sub):
    """Step-hat rejection with the alias table of pyapi.workloads.zipf_table."""
    nb = len(table)
    r, b = 0, sub
    while True:
        prod = b * nb
        thresh_lo, thresh_hi, lo0, lo1, cnt0, cnt1, sq0, sq1 = table[prod >> 64]
        if (prod & M64) < (thresh_hi << 32 | thresh_lo):
            lo, cnt, sq = lo0, cnt0, sq0
        else:
            lo, cnt, sq = lo1, cnt1, sq1
        x = sub_draw(sub, 2 * r + 2)
        prod = x * cnt
        k = lo + (prod >> 64)
        frac = prod & M64
        if (frac >> 32) < sq or k == lo:
            return k
        if unit(frac) < math.exp(a * math.log(lo / k)):
            return k
        r += 1
        b = sub_draw(sub, 2 * r + 1)


def zipf_perm(pages, seed):
    """The rank-1 -> page bijection of [0, pages) (cycle walking on ``bits`` bits)."""
    bits = max(1, (pages - 1).bit_length())
    mask, sh = (1 << bits) - 1, (bits + 1) // 2
    pkey = key_of(seed, SALTS["zipf_perm"])
    k0, k1 = draw(pkey, 0), draw(pkey, 1)

    def once(x):
        x = (((x + k0) & M64) * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> sh
        x = (((x + k1) & M64) * 0x94D049BB133111EB) & mask
        x ^= x >> sh
        return x

    def page(x):
        x = once(x)
        while x >= pages:
            x = once(x)
        return x
    return page


def zipf(n, pages, alpha, page_size, seed, base, align, sampler, table=None):
    key = key_of(seed, SALTS["zipf_draw"])
    page = zipf_perm(pages, seed)
    if sampler == "table":
        rows = [tuple(int(v) for v in row) for row in table]
    addr = []
    for i in range(n):
        sub = draw(key, i)
        off = mulhi(sub_draw(sub, 1), page_size // align) * align
        if sampler == "table":
            k = zipf_rank_table(rows, alpha, sub)
        else:
            k = zipf_rank_ri(pages, alpha, sub)
        addr.append(base + page(k - 1) * page_size + off)
    return addr, [LOAD] * n, [align] * n


def sattolo(nodes, seed):
    key = key_of(seed, SALTS["chase"])
    a = list(range(nodes))
    for i in range(nodes - 1, 0, -1):
        j = mulhi(draw(key, i), i)
        a[i], a[j] = a[j], a[i]
    return a


def pointer_chase(n, nodes, node_bytes, seed, base):
    nxt = sattolo(nodes, seed)
    addr, cur = [], 0
    for _ in range(n):
        addr.append(base + cur * node_bytes)
        cur = nxt[cur]
    return addr, [LOAD] * n, [8] * n


def matmul(nsize, block, elem_bytes, a, b, c):
    bl = block or nsize
    addr, op = [], []
    for ii in range(0, nsize, bl):
        for jj in range(0, nsize, bl):
            for kk in range(0, nsize, bl):
                for i in range(ii, ii + bl):
                    for j in range(jj, jj + bl):
                        addr.append(c + (i * nsize + j) * elem_bytes)
                        op.append(LOAD)
                        for k in range(kk, kk + bl):
                            addr.append(a + (i * nsize + k) * elem_bytes)
                            addr.append(b + (k * nsize + j) * elem_bytes)
                            op += [LOAD, LOAD]
                        addr.append(c + (i * nsize + j) * elem_bytes)
                        op.append(STORE)
    return addr, op, [elem_bytes] * len(addr)


STREAM_KERNELS = {"copy": (("a", LOAD), ("c", STORE)), "scale": (("c", LOAD), ("b", STORE)),
                  "add": (("a", LOAD), ("b", LOAD), ("c", STORE)),
                  "triad": (("b", LOAD), ("c", LOAD), ("a", STORE))}


def stream(n_elements, kernel, elem_bytes, iterations, base):
    nbytes = n_elements * elem_bytes
    bases = layout(base, [("a", nbytes), ("b", nbytes), ("c", nbytes)])
    addr, op = [], []
    for _ in range(iterations):
        for i in range(n_elements):
            for arr, o in STREAM_KERNELS[kernel]:
                addr.append(bases[arr] + i * elem_bytes)
                op.append(o)
    return addr, op, [elem_bytes] * len(addr)


def random_graph(vertices, n_edges, seed):
    """CSR lists: edge e from draw e of bfs_src to draw e of bfs_dst, stable by source."""
    ks, kd = key_of(seed, SALTS["bfs_src"]), key_of(seed, SALTS["bfs_dst"])
    adj = [[] for _ in range(vertices)]
    for e in range(n_edges):
        adj[mulhi(draw(ks, e), vertices)].append(mulhi(draw(kd, e), vertices))
    offsets, edges = [0], []
    for lst in adj:
        edges += lst
        offsets.append(len(edges))
    return offsets, edges


def bfs(vertices, avg_degree, seed, base):
    n_edges = int(round(vertices * avg_degree))
    offsets, edges = random_graph(vertices, n_edges, seed)
    reg = layout(base, [("offsets", 8 * (vertices + 1)), ("edges", 4 * n_edges),
                        ("visited", vertices), ("queue", 4 * vertices)])
    visited = [False] * vertices
    queue = []
    head = 0
    addr, op, size = [], [], []

    def emit(a, o, s):
        addr.append(a)
        op.append(o)
        size.append(s)

    for r in range(vertices):
        emit(reg["visited"] + r, LOAD, 1)
        if visited[r]:
            continue
        visited[r] = True
        emit(reg["visited"] + r, STORE, 1)
        emit(reg["queue"] + 4 * len(queue), STORE, 4)
        queue.append(r)
        while head < len(queue):
            emit(reg["queue"] + 4 * head, LOAD, 4)
            v = queue[head]
            head += 1
            emit(reg["offsets"] + 8 * v, LOAD, 8)
            emit(reg["offsets"] + 8 * (v + 1), LOAD, 8)
            for e in range(offsets[v], offsets[v + 1]):
                emit(reg["edges"] + 4 * e, LOAD, 4)
                u = edges[e]
                emit(reg["visited"] + u, LOAD, 1)
                if not visited[u]:
                    visited[u] = True
                    emit(reg["visited"] + u, STORE, 1)
                    emit(reg["queue"] + 4 * len(queue), STORE, 4)
                    queue.append(u)
    return addr, op, size


def reference(workload):
    """The reference stream of a ``pyapi.workloads`` workload (by its params)."""
    p = workload.params
    name = workload.name
    if name == "uniform":
        return uniform(**p)
    if name == "gups":
        return gups(**p)
    if name == "stride":
        return stride(**p)
    if name == "zipf":
        table = None
        if p["sampler"] == "table":
            from pyapi.workloads import zipf_table
            table = zipf_table(p["pages"], p["alpha"])
        return zipf(table=table, **p)
    if name == "pointer_chase":
        return pointer_chase(**p)
    if name == "matmul":
        r = workload.regions
        return matmul(p["nsize"], p["block"], p["elem_bytes"], r["A"][0], r["B"][0],
                      r["C"][0])
    if name == "stream":
        return stream(**p)
    if name == "bfs":
        return bfs(**p)
    raise ValueError(name)
