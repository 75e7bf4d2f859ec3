"""Property suites: each property is a function with a docstring saying exactly what it checks.

A property takes one concrete case (a number, or a :class:`verify.strategies.StepCase` /
:class:`~verify.strategies.SequenceCase`) and raises :class:`PropertyFailure` (an
``AssertionError``) with the offending quantities when the claim fails on it, or
:class:`NotApplicable` when the cell does not have the structure the claim is about. Run them
under Hypothesis (``tests/test_verify_properties.py``, ``python -m verify``) or by hand.

The scalar properties (exact interval checks of sigma' and tanh', the float kernels against
the exact values) live in :mod:`verify.scalar_properties` and are importable from here; this
module holds the cell properties. Forward values come from the cell's defining equations
through :mod:`verify.oracles` (the one interpreter), finite differences from its one
central-difference routine.
"""
from __future__ import annotations

import mpmath
import numpy
from sympy import MatrixSymbol
from sympy import MatMul
from sympy.matrices.expressions.diagonal import DiagMatrix

import derive
from derive.core.reduction import DimSize
from derive.core.binary import Binary
from derive.core.primitives import ALL_PRIMITIVES, Abs, Elementwise, Relu, Sigmoid, Sqrt
from derive.core.symbols import DIMS, Param, Var

from .gradcheck import gradcheck_kernel
from .oracles import evaluate_rows, fd_jacobian, stable
from .scalar_properties import (CLIP, ULP_TOLERANCE, NotApplicable, PropertyFailure,  # noqa: F401
                                scalar_identities, sigmoid_float, sigmoid_prime_exact,
                                sigmoid_prime_float, tanh_prime_exact, tanh_prime_float)

__all__ = [
    "PropertyFailure", "NotApplicable", "ULP_TOLERANCE", "CLIP", "scalar_identities",
    "sigmoid_prime_exact", "tanh_prime_exact", "sigmoid_prime_float", "tanh_prime_float",
    "sigmoid_float", "evaluate", "cell_values", "reference_kernels", "forward_matches_equations", "gates_in_unit_interval",
    "recurrence_structure", "step_jacobian_norm_bound", "jacobian_chain_bound",
    "direct_path_gate", "lstm_direct_path", "step_jacobian_matches_fd", "backward_matches_fd",
    "PROPERTIES",
]


# ---------------------------------------------------------------------------------------
# evaluating a cell's defining equations (an independent forward oracle)
# ---------------------------------------------------------------------------------------

def _cell(c):
    return derive.cell(c) if isinstance(c, str) else c


def _eval(expr, env):
    return evaluate_rows(expr, env, functions=stable)


def evaluate(expr, env):
    """Numerical value of a cell expression (equation right side, derived Jacobian-free
    vector expression, or backward assignment) on row-vector batches: ``env`` maps symbol
    names to arrays (vectors (B, n) or (n,), matrices as stored in ``params``); the
    nonlinearities are derive.codegen.np_primitives' (:func:`verify.oracles.evaluate_rows`)."""
    return _eval(expr, env)
def cell_values(cell, params, x, state) -> dict:
    """Every equation of the cell evaluated on row-vector batches, straight from its
    definition (the spec's expressions, :mod:`derive.codegen.np_primitives` for the
    nonlinearities; nothing derived): ``{name: (B, H) array}``."""
    c = _cell(cell)
    env = dict(params)
    env["x"] = x
    for s, v in zip(c.states, state):
        env[f"{s}_prev"] = numpy.reshape(v, (len(v), -1))     # a matrix state as vec(C) rows
    H = next(numpy.shape(v)[-1] for s, v in zip(c.states, state)
             if tuple(c.state_shapes[s]) == (DIMS["H"], 1))
    sizes = {DIMS["H"]: H, DIMS["H"] ** 2: H * H, 1: 1}
    for eq in c.equations:
        val = _eval(eq.rhs, env)                          # a constant: broadcast to its rows
        rows = (len(x), sizes.get(eq.lhs.shape[0], H))
        env[eq.lhs.name] = numpy.broadcast_to(val, rows) if numpy.ndim(val) < 2 else val
    return {eq.lhs.name: env[eq.lhs.name] for eq in c.equations}


def reference_kernels(name):
    """The derived kernels of a cell, ``derive.kernels(name)``."""
    return derive.kernels(name)


_kernel = reference_kernels


#: Finite differences are only meaningful away from a kink of relu: cases with a relu argument
#: within this distance of 0 are skipped (NotApplicable) by the finite-difference properties.
KINK_MARGIN = 1e-4


#: Nodes with a kink: relu and abs at argument 0, max and min where their arguments tie; and
#: sqrt near 0 (a layer norm of a nearly constant vector, s = sqrt(var + eps)): its derivative
#: 1/(2 sqrt) is so steep there that central differences are not accurate to 1e-6.
KINKED = (Relu, Abs, Binary, Sqrt)


def _kink_args(c, params, x, state):
    """The values that are 0 at a kink: relu's and abs's arguments, a - b of max(a, b)."""
    env = dict(params, x=x, **{f"{s}_prev": numpy.reshape(v, (len(v), -1))
                               for s, v in zip(c.states, state)})
    env.update(cell_values(c, params, x, state))
    for eq in c.equations:
        for node in eq.rhs.atoms(*KINKED) if hasattr(eq.rhs, "atoms") else ():
            if isinstance(node, Sqrt) and all(isinstance(a, DimSize) for a in
                                              node.arg.atoms(MatrixSymbol)):
                continue                                  # sqrt(H): a constant
            if isinstance(node, Binary):
                yield _eval(node.args[0], env) - _eval(node.args[1], env)
            else:
                yield _eval(node.arg, env)


def _skip_near_kinks(cell, params, xs, state0, step=None):
    """NotApplicable when some relu or abs argument, or the difference of a max's or min's
    arguments, is within KINK_MARGIN of 0 along the steps (no derivative there)."""
    c = _cell(cell)
    if not any(eq.rhs.has(*KINKED) for eq in c.equations):
        return
    s = tuple(state0)
    for t in range(len(xs)):
        for a in _kink_args(c, params, xs[t], s):
            if numpy.any(numpy.abs(a) < KINK_MARGIN):
                raise NotApplicable(f"{c.name}: a relu, abs, max, min or sqrt is within "
                                    f"{KINK_MARGIN} of its kink")
        vals = cell_values(c, params, xs[t], s)
        s = tuple(numpy.asarray(vals[n]) for n in c.states)


def _tol(dtype):
    return (1e-10, 1e-9) if numpy.dtype(dtype) == numpy.float64 else (1e-4, 1e-4)


def _close(name, got, want, atol, rtol):
    got, want = numpy.asarray(got, dtype=numpy.float64), numpy.asarray(want, dtype=numpy.float64)
    if got.shape != want.shape:
        raise PropertyFailure(f"{name}: shape {got.shape}, expected {want.shape}")
    err = numpy.abs(got - want)
    bad = err > atol + rtol * numpy.abs(want)
    if numpy.any(bad) or not numpy.all(numpy.isfinite(got)):
        i = numpy.unravel_index(int(numpy.nanargmax(numpy.where(numpy.isnan(err), numpy.inf, err))),
                                err.shape)
        raise PropertyFailure(f"{name}: max abs error {float(err[i]):.3e} at {tuple(map(int, i))} "
                              f"(got {got[i]!r}, expected {want[i]!r}; atol {atol}, rtol {rtol})")
    return float(err.max(initial=0.0))


# ---------------------------------------------------------------------------------------
# cell properties
# ---------------------------------------------------------------------------------------

def forward_matches_equations(case):
    """Checks kernel.step(params, x, state) equals the cell's defining equations evaluated
    directly (:func:`cell_values`) for every state, to 1e-10 absolute + 1e-9 relative in
    float64 (1e-4 in float32)."""
    k = _kernel(case.cell)
    got = k.step(case.params, case.x, case.state)
    vals = cell_values(case.cell, case.params, case.x, case.state)
    atol, rtol = _tol(case.x.dtype)
    return max(_close(f"{case.cell} step state {s}", numpy.reshape(g, (len(g), -1)), vals[s],
                      atol, rtol) for s, g in zip(k.STATE, got))


def _saturation(dtype):
    """|a| from which the float sigmoid 1/(1 + exp(-a)) rounds to exactly 1: where
    exp(-a) < eps/2, i.e. a > log(2/eps) (36.74 float64, 16.64 float32)."""
    eps = float(numpy.finfo(numpy.dtype(dtype)).eps)
    return float(mpmath.log(2 / eps)) * (1 - 1e-6)


def gates_in_unit_interval(case):
    """Checks that every gate (every equation ``g = sigmoid(...)`` of the cell) lies strictly in
    (0, 1) for every batch row and unit. Float caveat, stated: where |pre-activation| exceeds
    the saturation point (~36.7 float64, ~16.6 float32) the float sigmoid correctly rounds
    to 1, so there only 0 < g <= 1 is required. Returns the number of gate entries checked."""
    c = _cell(case.cell)
    vals = cell_values(c, case.params, case.x, case.state)
    env = dict(case.params, x=case.x, **{f"{s}_prev": v for s, v in zip(c.states, case.state)})
    env.update(vals)
    sat = _saturation(case.x.dtype)
    n = 0
    for eq in c.equations:
        if not isinstance(eq.rhs, Sigmoid):
            continue
        g = numpy.asarray(vals[eq.lhs.name])
        a = numpy.broadcast_to(_eval(eq.rhs.arg, env), g.shape)
        strict = numpy.abs(a) < sat
        ok = (g > 0) & numpy.where(strict, g < 1, g <= 1)
        if not numpy.all(ok):
            i = numpy.argwhere(~ok)[0]
            raise PropertyFailure(f"gate {eq.lhs.name} = {g[tuple(i)]!r} at {tuple(i)} "
                                  f"(pre-activation {a[tuple(i)]!r}) is not in (0, 1)")
        n += g.size
    if n == 0:
        raise NotApplicable(f"cell {c.name!r} has no sigmoid gate")
    return n


def recurrence_structure(cell):
    """(primitive, recurrent matrix name) when the derived dh_t/dh_{t-1} of a one-state cell
    is diag(phi'(a)) W, else None. Read from the derivation, not from the cell's name."""
    c = _cell(cell)
    if tuple(c.states) != ("h",):
        return None
    J = c.jacobian("h", "h")
    if not isinstance(J, MatMul):
        return None
    coeff, mats = J.as_coeff_matrices()
    if coeff != 1 or len(mats) != 2 or not isinstance(mats[0], DiagMatrix) \
            or not isinstance(mats[1], Param):
        return None
    d = mats[0].args[0]
    prims = [p for p in ALL_PRIMITIVES if p.derivative is type(d)]
    if not isinstance(d, Elementwise) or not d.is_derivative or len(prims) != 1:
        return None
    return prims[0], mats[1].name


def _spectral(m):
    return float(numpy.linalg.norm(numpy.asarray(m, dtype=numpy.float64), 2))


def step_jacobian_norm_bound(case):
    """Checks ||dh_t/dh_{t-1}||_2 <= gamma ||W_hh||_2 for every batch row, where the step
    Jacobian comes from kernel.step_jacobian, W_hh is the matrix in the derived form
    diag(phi'(a)) W_hh and gamma = sup phi' from the primitive (derive.core.primitives, e.g.
    Sigmoid.gamma() = 1/4), with a relative slack of 1e-12 for rounding. Returns the largest
    ratio ||J||_2 / (gamma ||W_hh||_2)."""
    st = recurrence_structure(case.cell)
    if st is None:
        raise NotApplicable(f"{case.cell}: dh_t/dh_{{t-1}} is not of the form diag(phi'(a)) W")
    prim, W = st
    gamma = float(prim.gamma())
    bound = gamma * _spectral(case.params[W])
    J = _kernel(case.cell).step_jacobian(case.params, case.x, case.state)
    worst = 0.0
    for b in range(J.shape[0]):
        n = _spectral(J[b])
        if n > bound * (1 + 1e-12) + 1e-300:
            raise PropertyFailure(f"{case.cell}: ||dh_t/dh_t-1||_2 = {n!r} > gamma ||{W}||_2 = "
                                  f"{gamma} * {_spectral(case.params[W])!r} = {bound!r} (batch row {b})")
        worst = max(worst, n / bound if bound else 0.0)
    return worst


def _trajectory(k, case):
    """States s_0..s_T (tuples) from kernel.step, and step Jacobians J_1..J_T (B, S, S)."""
    s = tuple(case.state0)
    states, jacs = [s], []
    for t in range(case.xs.shape[0]):
        jacs.append(k.step_jacobian(case.params, case.xs[t], s))
        s = tuple(k.step(case.params, case.xs[t], s))
        states.append(s)
    return states, jacs


def jacobian_chain_bound(case):
    """Checks ||dh_t/dh_k||_2 <= (gamma ||W_hh||_2)^(t-k) for every 0 <= k < t <= T on the
    sequence, where dh_t/dh_k = J_t J_{t-1} ... J_{k+1} is the ordered product of kernel step
    Jacobians along the trajectory and gamma, W_hh come from the derived form (as in
    :func:`step_jacobian_norm_bound`); relative slack 1e-12 per factor. Returns the number of
    (t, k, batch row) triples checked."""
    st = recurrence_structure(case.cell)
    if st is None:
        raise NotApplicable(f"{case.cell}: dh_t/dh_{{t-1}} is not of the form diag(phi'(a)) W")
    prim, W = st
    eta = float(prim.gamma()) * _spectral(case.params[W])
    k = _kernel(case.cell)
    _, jacs = _trajectory(k, case)
    T, B = len(jacs), case.xs.shape[1]
    n = 0
    for b in range(B):
        for kk in range(T):
            P = numpy.eye(jacs[0].shape[1])
            for t in range(kk + 1, T + 1):
                P = jacs[t - 1][b].astype(numpy.float64) @ P
                bound = eta ** (t - kk)
                norm = _spectral(P)
                if norm > bound * (1 + 1e-12) ** (t - kk) + 1e-300:
                    raise PropertyFailure(f"{case.cell}: ||dh_{t}/dh_{kk}||_2 = {norm!r} > "
                                          f"(gamma ||{W}||_2)^{t - kk} = {bound!r} (batch row {b})")
                n += 1
    return n


def direct_path_gate(cell):
    """The gate f when the derived one-step block dc_t/dc_{t-1} (h_{t-1} held fixed) is
    diag(f) for a single equation f, else None (e.g. peepholes add terms)."""
    c = _cell(cell)
    if "c" not in c.states:
        return None
    block = c.jacobian("c", "c")
    if isinstance(block, DiagMatrix) and isinstance(block.args[0], Var):
        return block.args[0].name
    return None


def lstm_direct_path(case):
    """Checks the LSTM direct path (no peepholes, gates held fixed): for every step j the
    c-c block of kernel.step_jacobian equals diag(f_j), f_j the forget gate evaluated from the
    cell's equations, and for every k < t the ordered product of these blocks
    dc_t/dc_k|direct = diag(prod_{j=k+1}^t f_j); tolerance 1e-12 absolute in float64.
    The gate is read from the derived block (:func:`direct_path_gate`). Returns the largest
    difference between this direct path and the full dc_t/dc_k (taken through the 2x2 block
    products), i.e. how much the other paths contribute."""
    c = _cell(case.cell)
    gate = direct_path_gate(c)
    if gate is None:
        raise NotApplicable(f"{c.name}: dc_t/dc_(t-1) is not diag(gate) (no c state, or peepholes)")
    k = _kernel(case.cell)
    states, jacs = _trajectory(k, case)
    H = case.state0[0].shape[1]
    ci = list(k.STATE).index("c")
    sl = slice(ci * H, (ci + 1) * H)
    atol = 1e-12 if case.xs.dtype == numpy.float64 else 1e-6
    gates = [cell_values(c, case.params, case.xs[t], states[t])[gate] for t in range(len(jacs))]
    for j, (J, f) in enumerate(zip(jacs, gates), start=1):
        for b in range(J.shape[0]):
            _close(f"{c.name}: dc_{j}/dc_{j - 1} vs diag({gate}_{j}) (row {b})", J[b][sl, sl],
                   numpy.diag(f[b]), atol, 0.0)
    T = len(jacs)
    other = 0.0
    for b in range(case.xs.shape[1]):
        for kk in range(T):
            direct = numpy.eye(H)
            full = numpy.eye(jacs[0].shape[1])
            prod = numpy.ones(H)
            for t in range(kk + 1, T + 1):
                direct = jacs[t - 1][b][sl, sl] @ direct
                full = jacs[t - 1][b] @ full
                prod = prod * gates[t - 1][b]
                _close(f"{c.name}: direct path dc_{t}/dc_{kk} vs diag(prod {gate}) (row {b})",
                       direct, numpy.diag(prod), atol, 1e-12)
                other = max(other, float(numpy.max(numpy.abs(full[sl, sl] - direct))))
    return other


def _fd_step_jacobian(k, params, x, state, eps=1e-6):
    """(B, S, S) central differences of kernel.step w.r.t. the concatenated state, per row."""
    shapes = [numpy.shape(v) for v in state]          # (B, H), (B, 1) or a matrix (B, H, H)
    s = numpy.concatenate([numpy.asarray(v, dtype=numpy.float64).reshape(len(v), -1)
                           for v in state], axis=1)
    ends = numpy.cumsum([0] + [int(numpy.prod(sh[1:])) for sh in shapes])

    def run(flat):
        parts = tuple(flat[:, ends[i]:ends[i + 1]].reshape(shapes[i]) for i in range(len(state)))
        return numpy.concatenate([a.reshape(len(a), -1) for a in k.step(params, x, parts)], axis=1)
    return fd_jacobian(run, s, eps, batch=1)


def step_jacobian_matches_fd(case):
    """Checks kernel.step_jacobian (the derived blocks, numerator layout, STATE order) equals
    central finite differences of kernel.step with respect to the concatenated previous
    state (eps 1e-6, float64), to 1e-6 absolute + 1e-6 relative. Cases with a relu argument
    within KINK_MARGIN of 0 are NotApplicable (no derivative there). Returns the max error."""
    k = _kernel(case.cell)
    p = {n: numpy.asarray(v, dtype=numpy.float64) for n, v in case.params.items()}
    x = numpy.asarray(case.x, dtype=numpy.float64)
    s = tuple(numpy.asarray(v, dtype=numpy.float64) for v in case.state)
    _skip_near_kinks(case.cell, p, x[None], s)
    J = k.step_jacobian(p, x, s)
    return _close(f"{case.cell} step_jacobian vs finite differences", J,
                  _fd_step_jacobian(k, p, x, s), 1e-6, 1e-6)


def backward_matches_fd(case):
    """Checks kernel.backward (full BPTT) against central finite differences of
    kernel.forward (verify.gradcheck.gradcheck_kernel, eps 1e-6, float64) for every parameter
    and initial state: max abs error <= 1e-6 or max relative error <= 1e-6 per array.
    Cases with a relu argument within KINK_MARGIN of 0 are NotApplicable. Returns the report."""
    k = _kernel(case.cell)
    p = {n: numpy.asarray(v, dtype=numpy.float64) for n, v in case.params.items()}
    _skip_near_kinks(case.cell, p, case.xs, case.state0)
    rep = gradcheck_kernel(k, p, numpy.asarray(case.xs, dtype=numpy.float64),
                           tuple(numpy.asarray(v, dtype=numpy.float64) for v in case.state0))
    bad = rep.failing(atol=1e-6, rtol=1e-6)
    if bad:
        raise PropertyFailure(f"{case.cell} backward vs finite differences:\n{rep}")
    return rep


#: Property name -> (function, kind of case: "real", "step" or "sequence").
PROPERTIES = {
    "sigmoid_prime_exact": (sigmoid_prime_exact, "real"),
    "tanh_prime_exact": (tanh_prime_exact, "real"),
    "sigmoid_prime_float": (sigmoid_prime_float, "float"),
    "tanh_prime_float": (tanh_prime_float, "float"),
    "sigmoid_float": (sigmoid_float, "float"),
    "forward_matches_equations": (forward_matches_equations, "step"),
    "gates_in_unit_interval": (gates_in_unit_interval, "step"),
    "step_jacobian_norm_bound": (step_jacobian_norm_bound, "step"),
    "jacobian_chain_bound": (jacobian_chain_bound, "sequence"),
    "lstm_direct_path": (lstm_direct_path, "sequence"),
    "step_jacobian_matches_fd": (step_jacobian_matches_fd, "step"),
    "backward_matches_fd": (backward_matches_fd, "sequence"),
}
