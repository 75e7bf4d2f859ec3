"""The public API of every generated kernel module, copied verbatim into it (after the
cell's constants CELL, STATE, OUTPUT, PARAMS, TORCH, _KEPT and its driver _forward,
_backward, _jacobian, which the generated module defines, and the input checks of
:mod:`derive.codegen.support`). Tested as a module of its own in tests/kernels/test_kernel_ir.py."""
import numpy

from derive.codegen.support import (_check_array, _check_cache, _check_params, _check_state,
                                    _init_params, _zero_state)


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
        s0 = _zero_state(STATE, B, H, dt)
    else:
        s0 = _check_state("state0" if seq else "state", state, STATE, B, H, dt)
    return p, x, s0


def step(params, x, state):
    """One step: x (B, D) and state (arrays (B, H) ordered like STATE) -> the new state."""
    p, x, s0 = _inputs(params, x, state, False)
    c = _forward(p, x[None], s0)
    return tuple(s[1].copy() for s in c["S"])


def forward(params, xs, state0=None):
    """Run xs (T, B, D) from state0 (zeros by default): (hs (T, B, H), cache for backward)."""
    p, xs, s0 = _inputs(params, xs, state0, True)
    c = _forward(p, xs.copy(), s0)      # the cache owns its inputs: changing xs later is safe
    return c["S"][STATE.index(OUTPUT)][1:].copy(), c


def backward(params, cache, dhs, dstate=None, *, return_dxs=False):
    """Full BPTT: dhs (T, B, H) = dL/dhs, dstate = dL/d(final state) (optional).
    Returns (grads keyed like params, dstate0 ordered like STATE), and with return_dxs=True
    also dL/dxs (T, B, D) as a third item (what a layer below needs)."""
    p, dims, dt = _check_params(params, PARAMS)
    T, B = _check_cache(cache, CELL, STATE, _KEPT, dims, dt)
    dhs = _check_array("dhs", dhs, (("T", T), ("B", B), ("H", dims["H"])), dt)
    if dstate is None:
        ds = _zero_state(STATE, B, dims["H"], dt)
    else:
        ds = _check_state("dstate", dstate, STATE, B, dims["H"], dt)
    grads, dstate0, dxs = _backward(p, cache, dhs, ds, bool(return_dxs))
    return (grads, dstate0, dxs) if return_dxs else (grads, dstate0)


def step_jacobian(params, x, state):
    """J[b, i, j] = d s_t[i] / d s_{t-1}[j] (B, S, S), S = H * len(STATE), blocks in STATE order."""
    p, x, s0 = _inputs(params, x, state, False)
    return _jacobian(p, x, s0)
