"""The scans of the generated scan kernels (:mod:`derive.codegen.scan`), copied verbatim into
every generated module after :mod:`derive.codegen.support`: the two-level affine scan for a
diagonal ``A_t`` (S x S blocks per unit), and the chunked scan for a matrix state
``S_t = S_{t-1} M_t + B_t`` that runs the module's own step functions on chunks.

Structure only, no cell math: what is cell-specific comes in as arguments (the module's
``_forward``, ``_backward``, ``_jvp_at``, its ``_KEPT`` table).
"""
import numpy

from derive.codegen.support import _cache_array, _has_shape


def _rows(a):
    """a as a 2-D array of its rows over every leading axis: (T, B, n) -> (T B, n)."""
    return a.reshape(-1, a.shape[-1])


def _unrows(v, T, B):
    """A sequence pass's value as (T, B, n) when it is rows (T B, n); constants unchanged."""
    return v.reshape(T, B, v.shape[-1]) if numpy.ndim(v) == 2 else v


def _scan_kept(cache, shapes, dtype):
    """The state-free values the scan backward reads, {name: array}: a scan cache's 'seq'
    (checked: exactly the names of ``shapes``, each an array of its (label, size) shape and
    ``dtype``), or a loop cache's 'V' when it holds them all at those shapes; None when they
    are to be recomputed (a cache without them)."""
    if cache.get("method", "loop") == "scan":
        kept = cache.get("seq")
        if kept is None:
            return None
        if not isinstance(kept, dict) or sorted(kept) != sorted(shapes):
            raise ValueError(f"cache: 'seq' must be a dict with the keys {sorted(shapes)}, got "
                             + (f"keys {sorted(kept, key=str)}" if isinstance(kept, dict)
                                else type(kept).__name__))
        for name, shape in shapes.items():
            _cache_array(f"'seq'[{name!r}]", kept[name], shape, dtype)
        return kept
    V = cache["V"]
    if all(n in V and _has_shape(V[n], shape) for n, shape in shapes.items()):
        return {n: V[n] for n in shapes}
    return None


def _closure(nz):
    """The nonzero pattern of every product of matrices with nonzero pattern ``nz`` (a set of
    (i, j)): the smallest superset closed under products."""
    nz = set(nz)
    while True:
        more = {(i, j) for i, k in nz for k2, j in nz if k == k2} - nz
        if not more:
            return nz
        nz |= more


def _block_mul(X, Y, S, pattern):
    """Z = X Y for S x S blocks of arrays (dicts {(i, j): array}, missing = 0), elementwise over
    the arrays, only for the entries in ``pattern``."""
    Z = {}
    for i, j in pattern:
        terms = [(X[i, k], Y[k, j]) for k in range(S) if (i, k) in X and (k, j) in Y]
        if terms:
            z = terms[0][0] * terms[0][1]
            for u, v in terms[1:]:
                z += u * v
            Z[i, j] = z
    return Z


def _compose(first, then, S, pattern):
    """(A, b) then (A', b') = (A' A, A' b + b'), blocks as in :func:`_block_mul`."""
    (A1, b1), (A2, b2) = first, then
    b = []
    for i in range(S):
        v = b2[i].copy()
        for k in range(S):
            if (i, k) in A2:
                v += A2[i, k] * b1[k]
        b.append(v)
    return _block_mul(A2, A1, S, pattern), b


def _affine_scan(A, b, s0, out, chunk=None):
    """s_t = A_t s_{t-1} + b_t for t = 0..T-1 from s_{-1} = s0, written into ``out``.

    A: {(i, j): array (T, ...), or one with fewer axes for an A_t constant in time} (missing
    entries are 0; an S x S block per element), b: S arrays broadcasting to (T, ...), s0: S
    arrays (...), out: S writable arrays (T, ...), any strides, not overlapping A or b.
    A two-level scan with O(T) work and no (T, ...) temporaries: the steps are cut into C
    chunks of K (about 2 sqrt(T)); (1) each full chunk's composition (P_c, e_c) = (A_last ...
    A_first, the chunk's state from 0) by runs of 8 steps and a balanced tree over the runs,
    vectorised across the chunks (8 + log2(K / 8) roundings deep: a chain of K products
    near 1 loses about K ulps); (2) the state before every chunk, s_(c) = P_(c-1) s_(c-1) + e_(c-1),
    over the C chunks; (3) the recurrence inside all chunks at once from those states, K
    passes writing ``out``. Each state sees at most log2 K + C + K compositions in a chain
    of states, like the loop's T, and no product of more than 8 + log2(K / 8) roundings."""
    S = len(b)
    T = out[0].shape[0]
    if T == 0:
        return out
    full, dt = out[0].shape, out[0].dtype
    K = chunk or max(1, int(numpy.ceil(2 * numpy.sqrt(T))))
    C = -(-T // K)
    const = all(numpy.ndim(a) < len(full) for a in A.values())
    A = {ij: numpy.asarray(a, dt) if numpy.ndim(a) < len(full) else numpy.broadcast_to(a, full)
         for ij, a in A.items()}
    b = [numpy.broadcast_to(numpy.asarray(bi, dt), full) for bi in b]

    def at(a, j, m):
        return a if numpy.ndim(a) < len(full) else a[j::K][:m]
    E = [numpy.empty((C,) + full[1:], dt) for _ in range(S)]
    for i in range(S):
        E[i][0] = s0[i]
    n = C - 1                                # (1) the full chunks before the last one
    if n:
        pattern = sorted(_closure(A))
        items = []                           # runs of 8 positions in place, then a tree
        for g in range(0, K, 8):
            P = {ij: numpy.array(at(v, g, n), dt) for ij, v in A.items()}
            e = [bi[g::K][:n].copy() for bi in b]
            for j in range(g + 1, min(g + 8, K)):
                a = {ij: at(v, j, n) for ij, v in A.items()}
                if S == 1:
                    e[0] *= a[0, 0]
                    e[0] += b[0][j::K][:n]
                    if const:
                        P = {(0, 0): a[0, 0] * P[0, 0]}
                    else:
                        P[0, 0] *= a[0, 0]
                else:
                    P, e = _compose((P, e), (a, [bi[j::K][:n] for bi in b]), S, pattern)
            items.append((P, e))
        while len(items) > 1:                # a balanced tree: log2(K / 8) roundings deep
            nxt = [_compose(items[q], items[q + 1], S, pattern) for q in range(0, len(items) - 1, 2)]
            items = nxt + items[len(items) - len(items) % 2:]
        P, e = items[0]
        for c in range(1, C):                # (2) the state before each chunk
            for i in range(S):
                v = E[i][c]
                v[...] = e[i][c - 1]
                for k in range(S):
                    if (i, k) in P:
                        v += (P[i, k] if numpy.ndim(P[i, k]) < len(full) else P[i, k][c - 1]) \
                            * E[k][c - 1]
    tmp = numpy.empty((C,) + full[1:], dt)
    for j in range(min(K, T)):               # (3) the recurrence inside every chunk
        m = len(range(j, T, K))
        prev = [E[k][:m] if j == 0 else out[k][j - 1::K][:m] for k in range(S)]
        w = tmp[:m]
        for i in range(S):
            x = out[i][j::K]
            x[...] = b[i][j::K][:m]
            for k in range(S):
                if (i, k) in A:
                    numpy.multiply(at(A[i, k], j, m), prev[k], out=w)
                    x += w
    return out


def _affine_scan_reverse(A, g, ds, out, chunk=None):
    """The adjoint recursion Delta_t = g_t + A_{t+1}^T Delta_{t+1}, t = T-1..0, with
    Delta_{T-1} = g_{T-1} + ds, into ``out`` (S arrays (T, ...)): :func:`_affine_scan` run
    backwards in time over the transposed blocks. A as for _affine_scan (broadcasting to
    (T, ...)), g: S arrays (T, ...)."""
    T = out[0].shape[0]
    if T == 0:
        return out
    full = out[0].shape
    M = {(j, i): numpy.broadcast_to(a, full)[:0:-1] if numpy.ndim(a) == len(full) else a
         for (i, j), a in A.items()}
    for i in range(len(g)):
        numpy.add(g[i][-1], ds[i], out=out[i][-1])
    _affine_scan(M, [gi[-2::-1] for gi in g], [o[-1] for o in out],
                 [o[-2::-1] for o in out], chunk)
    return out


# -- the chunked scan of a matrix state: S_t = S_{t-1} M_t + B_t ----------------------------

def _chunk_size(T, chunk):
    """The chunk length K: ``chunk`` (checked by the API: None or an int >= 1), by default
    ceil(sqrt(T))."""
    return int(chunk) if chunk is not None else max(1, int(numpy.ceil(numpy.sqrt(T))))


def _side(width):
    """n for a matrix state held as its n^2-vector of ``width`` entries."""
    return int(numpy.sqrt(width) + 0.5)


def _per_step(KEPT):
    """The kept values with a value per step (their dims start with T), not constants."""
    return {name for name, spec in KEPT.items() if spec[:1] == ("T",)}


def _to_chunks(a, n, K, extra=0):
    """(T, B, ...) -> (K + extra, n B, ...): step j of chunk c (row j, rows c B .. c B + B - 1)
    is step c K + j of ``a``, for the first n chunks of K steps."""
    idx = numpy.arange(K + extra)[:, None] + K * numpy.arange(n)[None, :]
    out = a[idx]
    return out.reshape((K + extra, n * a.shape[1]) + a.shape[2:])


def _from_chunks(a, n, B):
    """The inverse of :func:`_to_chunks` (extra = 0): (K, n B, ...) -> (n K, B, ...)."""
    K = a.shape[0]
    return a.reshape((K, n, B) + a.shape[2:]).swapaxes(0, 1).reshape((n * K, B) + a.shape[2:])


def _chunk_caches(c, n, K, KEPT):
    """A forward cache cut into (the n full chunks of K steps batched chunk-major, the tail):
    two caches of the loop's form, the tail None when K divides T."""
    xs, T, a = c["xs"], c["xs"].shape[0], n * K
    per_step = _per_step(KEPT)
    full = dict(c, xs=_to_chunks(xs, n, K), S=tuple(_to_chunks(s, n, K, 1) for s in c["S"]),
                V={k: (_to_chunks(v, n, K) if k in per_step else v) for k, v in c["V"].items()})
    tail = dict(c, xs=xs[a:], S=tuple(s[a:] for s in c["S"]),
                V={k: (v[a:] if k in per_step else v) for k, v in c["V"].items()})
    return [full if n else None, tail if T > a else None]


def _join_chunks(parts, s0, n, B, KEPT):
    """One forward cache (the loop's form) from the caches of the batched full chunks and the
    tail (either may be None), the states from s0 on."""
    per_step = _per_step(KEPT)
    full, tail = parts
    some = full or tail

    def cat(pick):
        seq = ([_from_chunks(pick(full), n, B)] if full else []) + ([pick(tail)] if tail else [])
        return numpy.concatenate(seq) if len(seq) > 1 else seq[0]
    S = tuple(numpy.concatenate([s0[i][None], cat(lambda c: c["S"][i][1:])])
              for i in range(len(s0)))
    V = {k: (cat(lambda c: c["V"][k]) if k in per_step else v) for k, v in some["V"].items()}
    return S, V


def _compositions(jvp_at, p, c, r, widths):
    """P with S_end = S_start P + e over each chunk of a chunk-batched forward cache c (K steps,
    N rows): the product M_1 ... M_K of the chunk's right multipliers, applied to I one step
    at a time by the cell's derived JVP at each step (the map dS -> dS M_t reads only the
    stored state-free values; the other states' tangents are 0)."""
    N, K = c["xs"].shape[1], c["xs"].shape[0]
    H = _side(widths[r])
    dt = c["xs"].dtype
    zeros = tuple(numpy.zeros((N, w), dt) for w in widths)
    P = numpy.broadcast_to(numpy.eye(H, dtype=dt).reshape(1, H * H), (N, H * H)).copy()
    for j in range(K):
        P = jvp_at(p, c, j, tuple(P if i == r else z for i, z in enumerate(zeros)))[r]
    return P.reshape(N, H, H)


def _right_scan_forward(fwd, jvp_at, KEPT, p, xs, s0, r, chunk=None):
    """The states of S_t = S_{t-1} M_t + B_t (state ``r``, (B, H H) row-major) and of the other
    states, as the loop's cache: (1) every full chunk of K steps run from S = 0 by the cell's
    own forward, all chunks at once (its end state e_c) and its composition P_c
    (:func:`_compositions`); (2) the state before each chunk, S_(c) = S_(c-1) P_(c-1) + e_(c-1),
    over the C chunks; (3) the cell's forward over every chunk at once from those states.
    About 3 K + C steps of Python, for K = chunk (default ceil(sqrt(T)))."""
    T, B = xs.shape[:2]
    K = _chunk_size(T, chunk)
    if T == 0:
        return dict(fwd(p, xs, s0), method="scan", chunk=K)
    n, rest = divmod(T, K)
    dt = s0[r].dtype
    widths = tuple(s.shape[1] for s in s0)
    width = widths[r]
    H = _side(width)
    C = n + (rest > 0)
    starts = [s0[r].reshape(B, H, H)]
    if C > 1:
        m = C - 1                                      # the full chunks followed by another
        X = _to_chunks(xs, m, K)
        zero = tuple(numpy.zeros((m * B, s.shape[1]), dt) for s in s0)
        c1 = fwd(p, X, zero)
        e = c1["S"][r][-1].reshape(m, B, H, H)
        P = _compositions(jvp_at, p, c1, r, widths).reshape(m, B, H, H)
        for c in range(1, C):
            starts.append(starts[-1] @ P[c - 1] + e[c - 1])
    parts = [None, None]
    if n:
        init = tuple(numpy.concatenate([starts[c].reshape(B, width) for c in range(n)]) if i == r
                     else numpy.concatenate([s0[i]] * n) for i in range(len(s0)))
        parts[0] = fwd(p, _to_chunks(xs, n, K), init)
    if rest:
        init = tuple(starts[-1].reshape(B, width) if i == r else s0[i] for i in range(len(s0)))
        parts[1] = fwd(p, xs[n * K:], init)
    S, V = _join_chunks(parts, s0, n, B, KEPT)
    return {"cell": (parts[0] or parts[1])["cell"], "method": "scan", "chunk": K, "xs": xs,
            "S": S, "V": V}


def _right_scan_backward(bwd, jvp_at, KEPT, p, c, dhs, ds, want_dx, r, chunk=None):
    """BPTT of S_t = S_{t-1} M_t + B_t by a chunked reverse scan of the adjoint recursion
    delta S_{t-1} = delta S_t M_t^T + (the step's local term): (1) each chunk's backward from
    a zero gradient at its end (its local part f_c, the user's dstate in the last chunk) and
    its composition P_c; (2) E_(c-1) = E_c P_c^T + f_c, the gradient reaching each chunk's end
    from later chunks; (3) the cell's backward over every chunk at once from E_c, which gives
    the parameter gradients (summed over chunks), dL/dxs and dstate0. Takes any cache with
    the loop's values (the loop's, or this scan's)."""
    xs = c["xs"]
    T, B = xs.shape[:2]
    K = _chunk_size(T, chunk)
    if T == 0:
        return bwd(p, c, dhs, ds, want_dx)
    n, rest = divmod(T, K)
    dt = ds[r].dtype
    widths = tuple(s.shape[1] for s in ds)
    width = widths[r]
    H = _side(width)
    C = n + (rest > 0)
    full, tail = _chunk_caches(c, n, K, KEPT)
    dh = [_to_chunks(dhs, n, K) if n else None, dhs[n * K:] if rest else None]

    def end_grads(E):
        """dL/d(state at each chunk's end) given E (C, B, H, H): the user's dstate added in
        the last chunk, the other states' zero elsewhere."""
        out = [None, None]
        for part, cs in ((0, range(n)), (1, range(n, C))):
            if not cs:
                continue
            rows = []
            for i in range(len(ds)):
                blocks = [(E[q].reshape(B, width) if i == r else numpy.zeros_like(ds[i]))
                          + (ds[i] if q == C - 1 else 0) for q in cs]
                rows.append(numpy.concatenate(blocks) if len(blocks) > 1 else blocks[0])
            out[part] = tuple(rows)
        return out
    E = numpy.zeros((C, B, H, H), dt)
    if C > 1:
        local = end_grads(E)
        f = []
        for part, cache in ((0, full), (1, tail)):
            if cache is not None:
                d0 = bwd(p, cache, dh[part], local[part], False)[1][r]
                f.append(d0.reshape(-1, B, H, H))
        f = numpy.concatenate(f)
        P = numpy.concatenate([_compositions(jvp_at, p, cache, r, widths).reshape(-1, B, H, H)
                               for cache in (full, tail) if cache is not None])
        for q in range(C - 1, 0, -1):
            E[q - 1] = E[q] @ P[q].swapaxes(-1, -2) + f[q]
    ends = end_grads(E)
    grads, dstate0, dxs = None, None, []
    for part, cache in ((0, full), (1, tail)):
        if cache is None:
            continue
        g, d0, dx = bwd(p, cache, dh[part], ends[part], want_dx)
        grads = g if grads is None else {k: grads[k] + g[k] for k in grads}
        if dstate0 is None:
            dstate0 = tuple(d[:B].copy() for d in d0)
        if want_dx:
            dxs.append(_from_chunks(dx, n, B) if part == 0 else dx)
    dxs = (numpy.concatenate(dxs) if len(dxs) > 1 else dxs[0]) if want_dx else None
    return grads, dstate0, dxs
