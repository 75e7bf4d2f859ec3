"""The public API of every generated kernel module, copied verbatim into it (after the
cell's constants CELL, STATE, STATE_SHAPES, OUTPUT, PARAMS, TORCH, _KEPT and its driver _forward,
_backward, _jacobian, which the generated module defines, and the input checks of
:mod:`derive.codegen.support`). Tested as a module of its own in tests/kernels/test_kernel_ir.py."""
import numpy

from derive.codegen.support import (_check_array, _check_cache, _check_params, _check_state,
                                    _init_params, _public_state, _zero_state)


def init_params(input_size, hidden_size, *, rng=None, dtype=numpy.float64):
    """Parameters keyed like PARAMS, uniform in [-1/sqrt(H), 1/sqrt(H)] (as PyTorch)."""
    return _init_params(PARAMS, input_size, hidden_size, rng, dtype)


def _inputs(params, x, state, seq):
    p, dims, dt = _check_params(params, PARAMS)
    H, D = dims["H"], dims.get("D")
    if seq:
        x = _check_array("xs", x, (("T", None), ("B", None), ("D", D)), dt)
        B = x.shape[1]
    else:
        x = _check_array("x", x, (("B", None), ("D", D)), dt)
        B = x.shape[0]
    if state is None:
        s0 = _zero_state(STATE, B, H, dt, STATE_SHAPES)
    else:
        s0 = _check_state("state0" if seq else "state", state, STATE, B, H, dt, STATE_SHAPES)
    return p, x, s0


def step(params, x, state):
    """One step: x (B, D) and state (arrays ordered like STATE, shaped as STATE_SHAPES says:
    (B, H), a scalar (B, 1), a matrix (B, H, H)) -> the new state."""
    p, x, s0 = _inputs(params, x, state, False)
    c = _forward(p, x[None], s0)
    return _public_state(STATE, STATE_SHAPES, tuple(s[1].copy() for s in c["S"]))


def forward(params, xs, state0=None, *, method="loop", chunk=None):
    """Run xs (T, B, D) from state0 (zeros by default): (hs (T, B, H), cache for backward).
    method="scan" (cells affine in their state only: SCAN_REFUSAL says why not) computes the
    states without a loop over t: a two-level parallel scan for a diagonal A_t (O(T) work,
    about 2 sqrt(T) passes over chunk slices), a chunked scan for a matrix state
    S_t = S_{t-1} M_t + B_t (a loop inside chunks, all chunks at once, a scan across them).
    chunk: the scan's chunk length (default about sqrt(T)); "loop" ignores it."""
    p, xs, s0 = _inputs(params, xs, state0, True)
    if method == "scan":
        if SCAN_REFUSAL:
            raise ValueError(f"forward(method='scan'): {SCAN_REFUSAL}")
        c = _scan_forward(p, xs.copy(), s0, _check_chunk(chunk))
    elif method == "loop":
        c = _forward(p, xs.copy(), s0)  # the cache owns its inputs: changing xs later is safe
    else:
        raise ValueError(f"forward: method must be 'loop' or 'scan', got {method!r}")
    return c["S"][STATE.index(OUTPUT)][1:].copy(), c


def _check_chunk(chunk):
    """``chunk`` when it is None or an int >= 1; a ValueError naming it otherwise."""
    if chunk is None or (isinstance(chunk, (int, numpy.integer)) and not isinstance(chunk, bool)
                         and chunk >= 1):
        return None if chunk is None else int(chunk)
    raise ValueError(f"chunk: must be a positive integer or None, got {chunk!r}")


def backward(params, cache, dhs, dstate=None, *, return_dxs=False, method=None, chunk=None,
             held=False):
    """Full BPTT: dhs (T, B, H) = dL/dhs, dstate = dL/d(final state) (optional).
    Returns (grads keyed like params, dstate0 ordered like STATE), and with return_dxs=True
    also dL/dxs (T, B, D) as a third item (what a layer below needs). method: "loop", or
    "scan" (a reverse scan of the adjoint recursion; it reads the inputs, the states and the
    kept state-free values, recomputing them when absent, so it takes the cache of either
    forward); by default the method of the forward that made the cache. chunk: the reverse
    scan's chunk length (default: the forward scan's, else about sqrt(T)). held=True: the
    cheaper backward with the states of HOLDABLE held constant (the outputs do not depend on
    them, so every other gradient is the same for a loss of the outputs alone: dstate may be
    nonzero only for OUTPUT; the held states' dstate0 is 0, not their gradient)."""
    p, dims, dt = _check_params(params, PARAMS)
    made = cache.get("method", "loop") if isinstance(cache, dict) else "loop"
    method = made if method is None else method
    if method not in ("loop", "scan"):
        raise ValueError(f"backward: method must be 'loop' or 'scan', got {method!r}")
    if method == "scan" and SCAN_REFUSAL:
        raise ValueError(f"backward(method='scan'): {SCAN_REFUSAL}")
    # a diagonal scan's cache keeps its own values ('seq', no 'V'); a matrix scan's is the loop's
    seq = made == "scan" and isinstance(cache, dict) and not cache.get("V")
    if method == "loop" and made == "scan" and seq:
        raise ValueError("backward(method='loop'): this cache comes from forward(method='scan'), "
                         "which keeps the inputs, the states and the scan's values ('seq'); "
                         "use method='scan'")
    T, B = _check_cache(cache, CELL, STATE, {} if seq else _KEPT, dims, dt, STATE_SHAPES)
    dhs = _check_array("dhs", dhs, (("T", T), ("B", B), ("H", dims["H"])), dt)
    if dstate is None:
        ds = _zero_state(STATE, B, dims["H"], dt, STATE_SHAPES)
    else:
        ds = _check_state("dstate", dstate, STATE, B, dims["H"], dt, STATE_SHAPES)
    chunk = _check_chunk(chunk if chunk is not None else cache.get("chunk"))  # the forward's
    if held:
        _check_held(method, ds)
        grads, dstate0, dxs = _held_backward(p, cache, dhs, ds, bool(return_dxs))
    elif method == "scan":
        grads, dstate0, dxs = _scan_backward(p, cache, dhs, ds, bool(return_dxs), chunk)
    else:
        grads, dstate0, dxs = _backward(p, cache, dhs, ds, bool(return_dxs))
    dstate0 = _public_state(STATE, STATE_SHAPES, dstate0)
    return (grads, dstate0, dxs) if return_dxs else (grads, dstate0)


def _check_held(method, ds):
    """backward(held=True) needs a cell with HOLDABLE states, the loop, and a loss of the outputs
    alone (dstate zero but for OUTPUT)."""
    if not HOLDABLE:
        raise ValueError(f"backward(held=True): cell {CELL!r} has no holdable state (HOLDABLE is "
                         f"empty: every state can change its outputs)")
    if method == "scan":
        raise ValueError("backward(held=True): the held backward is a loop; use method='loop'")
    for s, d in zip(STATE, ds):
        if s != OUTPUT and numpy.any(d):
            raise ValueError(f"backward(held=True): dstate for {s!r} must be zero (the held "
                             f"backward is exact for a loss of the outputs {OUTPUT!r} alone, "
                             f"which do not depend on {', '.join(HOLDABLE)})")


#: The largest step Jacobian step_jacobian materialises (bytes); beyond it, use step_jvp/step_vjp.
JACOBIAN_LIMIT_BYTES = 1 << 28


def step_jacobian(params, x, state):
    """J[b, i, j] = d s_t[i] / d s_{t-1}[j] (B, S, S), S = the states' sizes (H each; 1 for a
    scalar, H * H for a matrix, row-major), blocks in STATE order."""
    p, x, s0 = _inputs(params, x, state, False)
    S = sum(s.shape[1] for s in s0)
    size = x.shape[0] * S * S * s0[0].dtype.itemsize
    if size > JACOBIAN_LIMIT_BYTES:
        raise ValueError(f"step_jacobian: J would be (B, S, S) = ({x.shape[0]}, {S}, {S}), "
                         f"{_bytes_text(size)} (limit {_bytes_text(JACOBIAN_LIMIT_BYTES)}); "
                         f"use step_jvp(params, x, state, dstate_prev) or "
                         f"step_vjp(params, x, state, dstate), which never form J")
    return _jacobian(p, x, s0)


def _bytes_text(n):
    """n bytes as MiB when at least 1 MiB, else as bytes (a small limit stays readable)."""
    return f"{n / 2 ** 20:.0f} MiB" if n >= 2 ** 20 else f"{n} bytes"


def step_jvp(params, x, state, dstate_prev):
    """J v without forming J: dstate_prev (arrays shaped like the state, ordered like STATE)
    is a tangent of s_{t-1}; returns d s_t = sum_r (d s_t / d r_{t-1}) dstate_prev_r, a tuple
    like STATE."""
    p, x, s0 = _inputs(params, x, state, False)
    H = _check_params(params, PARAMS)[1]["H"]
    v = _check_state("dstate_prev", dstate_prev, STATE, x.shape[0], H, s0[0].dtype, STATE_SHAPES)
    return _public_state(STATE, STATE_SHAPES, tuple(_jvp(p, x, s0, v)))


def step_vjp(params, x, state, dstate):
    """J^T u without forming J: dstate (arrays shaped like the state, ordered like STATE) =
    dL/ds_t; returns dL/ds_{t-1} = sum_s (d s_t / d s'_{t-1})^T dstate_s, a tuple like STATE
    (one backward step)."""
    p, x, s0 = _inputs(params, x, state, False)
    B, H, dt = x.shape[0], _check_params(params, PARAMS)[1]["H"], s0[0].dtype
    ds = _check_state("dstate", dstate, STATE, B, H, dt, STATE_SHAPES)
    c = _forward(p, x[None], s0)
    _, dstate0, _ = _backward(p, c, numpy.zeros((1, B, H), dt), ds, False)
    return _public_state(STATE, STATE_SHAPES, tuple(dstate0))
