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


def forward(params, xs, state0=None, *, method="loop"):
    """Run xs (T, B, D) from state0 (zeros by default): (hs (T, B, H), cache for backward).
    method="scan" (cells affine in their state only: SCAN_REFUSAL says why not) computes the
    states by a two-level parallel scan (O(T) work, about 2 sqrt(T) passes over chunk slices)
    instead of a loop over t."""
    p, xs, s0 = _inputs(params, xs, state0, True)
    if method == "scan":
        if SCAN_REFUSAL:
            raise ValueError(f"forward(method='scan'): {SCAN_REFUSAL}")
        c = _scan_forward(p, xs.copy(), s0)
    elif method == "loop":
        c = _forward(p, xs.copy(), s0)  # the cache owns its inputs: changing xs later is safe
    else:
        raise ValueError(f"forward: method must be 'loop' or 'scan', got {method!r}")
    return c["S"][STATE.index(OUTPUT)][1:].copy(), c


def backward(params, cache, dhs, dstate=None, *, return_dxs=False, method=None):
    """Full BPTT: dhs (T, B, H) = dL/dhs, dstate = dL/d(final state) (optional).
    Returns (grads keyed like params, dstate0 ordered like STATE), and with return_dxs=True
    also dL/dxs (T, B, D) as a third item (what a layer below needs). method: "loop", or
    "scan" (a reverse scan of the adjoint recursion; it reads the inputs, the states and the
    kept state-free values, recomputing them when absent, so it takes the cache of either forward); by default the method of the forward that made
    the cache."""
    p, dims, dt = _check_params(params, PARAMS)
    made = cache.get("method", "loop") if isinstance(cache, dict) else "loop"
    method = made if method is None else method
    if method not in ("loop", "scan"):
        raise ValueError(f"backward: method must be 'loop' or 'scan', got {method!r}")
    if method == "scan" and SCAN_REFUSAL:
        raise ValueError(f"backward(method='scan'): {SCAN_REFUSAL}")
    if method == "loop" and made == "scan":
        raise ValueError("backward(method='loop'): this cache comes from forward(method='scan'), "
                         "which keeps the inputs, the states and the scan's values ('seq'); "
                         "use method='scan'")
    T, B = _check_cache(cache, CELL, STATE, _KEPT if made == "loop" else {}, dims, dt, STATE_SHAPES)
    dhs = _check_array("dhs", dhs, (("T", T), ("B", B), ("H", dims["H"])), dt)
    if dstate is None:
        ds = _zero_state(STATE, B, dims["H"], dt, STATE_SHAPES)
    else:
        ds = _check_state("dstate", dstate, STATE, B, dims["H"], dt, STATE_SHAPES)
    run = _scan_backward if method == "scan" else _backward
    grads, dstate0, dxs = run(p, cache, dhs, ds, bool(return_dxs))
    dstate0 = _public_state(STATE, STATE_SHAPES, dstate0)
    return (grads, dstate0, dxs) if return_dxs else (grads, dstate0)


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
                         f"{size / 2 ** 20:.0f} MiB (limit {JACOBIAN_LIMIT_BYTES >> 20} MiB); "
                         f"use step_jvp(params, x, state, dstate_prev) or "
                         f"step_vjp(params, x, state, dstate), which never form J")
    return _jacobian(p, x, s0)


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
