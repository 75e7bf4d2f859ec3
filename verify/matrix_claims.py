"""Claims about the matrix-state cells (mLSTM, Gated DeltaNet), proved from their specs.

* ``gated_deltanet.delta_rule.eigenvalues``: the derived block dS_t/dS_{t-1}, expanded at H = 3
  with symbolic alpha, beta and key k, is alpha (I ⊗ M) with M = I - beta k k^T (the row-major
  vec of ΔS ↦ alpha ΔS M); M is symmetric and its characteristic polynomial is (lambda - 1)^2
  (lambda - 1 + beta k^T k) (SymPy), so for a unit k its eigenvalues are 1 - beta (eigenvector
  k) and 1 (the plane k^⊥), all in [1 - beta, 1]. Float check: the kernel's step_jvp maps the
  probes ΔS = u k^T to alpha (1 - beta) ΔS and ΔS = u w^T, w ⊥ k, to alpha ΔS;
* ``mlstm.stabiliser``: with m_t replaced by any mu and C_{t-1} = Cbar e^{-m_{t-1}}, n_{t-1} =
  nbar e^{-m_{t-1}}, the unstabilised states e^mu C_t = e^f~ Cbar + e^i~ v k^T, e^mu n_t =
  e^f~ nbar + e^i~ k and both arguments of the normaliser times e^mu, |e^mu n_t^T q| and
  e^mu exp(-mu) = 1, are free of mu and m_{t-1}; so is h_t = o (e^mu C_t q) / max(|e^mu n_t^T q|,
  1). Holding m in the backward pass (``cell.holding("m")``) changes no gradient of a
  parameter. Float check: held and full kernel gradients agree.
"""
from __future__ import annotations

import functools

import numpy
import sympy
from hypothesis import strategies as st
from sympy import ImmutableMatrix, MatrixSymbol, eye
from sympy.matrices import kronecker_product

import derive
from derive.core import matrixstate as MS

from .cellarg import resolve_cell
from .explicit import expand
from .modern_claims import claim_specs as modern_claim_specs, compare_held
from .scalar_properties import PropertyFailure


def _factor_matrix(f, a):
    """The explicit matrix of a Kronecker factor of the vector a, from its definition."""
    if isinstance(f, (MS.ByMatrix, MS.ByMatrixT)):
        n = int(sympy.sqrt(a.rows))
        M = ImmutableMatrix(n, n, list(a))
        return M if isinstance(f, MS.ByMatrix) else M.T
    I = eye(a.rows)
    return ImmutableMatrix({MS.KronRight: lambda: kronecker_product(I, a),
                            MS.KronRightT: lambda: kronecker_product(I, a.T),
                            MS.KronLeft: lambda: kronecker_product(a, I),
                            MS.KronLeftT: lambda: kronecker_product(a.T, I)}[type(f)]())


def explicit(ex, expr, values=None):
    """``ex.explicit(expr)`` with the Kronecker factors expanded and the equation variables
    named in ``values`` ({name: matrix}) replaced by the given matrices."""
    extra = {s: values[s.name] for s in expr.atoms(MatrixSymbol) if values and s.name in values}
    fs = set(expr.find(lambda e: isinstance(e, MS.Factor)))
    sub = {f: _factor_matrix(f, explicit(ex, f.a, values)) for f in fs}
    return ex.explicit(expr.xreplace(sub), extra=extra)


def _proof_eigenvalues(cell="gated_deltanet", n=3):
    c = resolve_cell(cell)
    ex = expand(c, n)
    a, b, lam = sympy.symbols("alpha beta lambda", positive=True)
    k = ImmutableMatrix(sympy.symbols(f"k0:{n}", real=True))
    J = explicit(ex, c.jacobian("S", "S"), {"alpha": ImmutableMatrix([[a]]),
                                             "beta": ImmutableMatrix([[b]]), "k": k})
    M = eye(n) - b * k * k.T
    kk = (k.T * k)[0]
    block = (J - a * kronecker_product(eye(n), M)).applyfunc(sympy.expand)
    poly = M.charpoly(lam)
    char = sympy.expand(poly.as_expr().xreplace({poly.gen: lam})
                        - (lam - 1) ** (n - 1) * (lam - 1 + b * kk))
    ok = block.is_zero_matrix and M.is_symmetric() and char == 0
    return ok, (f"the derived dS_t/dS_(t-1) of {c.name}, explicit at H = {n}, equals alpha (I ⊗ M), "
                f"M = I - beta k k^T symmetric with characteristic polynomial (lambda - 1)^{n - 1} "
                f"(lambda - 1 + beta k^T k) (SymPy): for a unit k the eigenvalues are 1 - beta and "
                f"1, in [1 - beta, 1]")


def _proof_stabiliser(cell="mlstm", n=2):
    c = resolve_cell(cell)
    ex = expand(c, n)
    v = ex.values
    (m_prev,) = ex.prev_symbols("m")
    C_prev, n_prev = ex.prev_symbols("C"), ex.prev_symbols("n")
    mu = sympy.Symbol("mu", real=True)
    Cb = [sympy.Symbol(f"Cbar{i}", real=True) for i in range(len(C_prev))]
    nb = [sympy.Symbol(f"nbar{i}", real=True) for i in range(len(n_prev))]
    sub = {v["m"][0]: mu}
    back = {**{p: s * sympy.exp(-m_prev) for p, s in zip(C_prev, Cb)},
            **{p: s * sympy.exp(-m_prev) for p, s in zip(n_prev, nb)}}

    def norm(e):
        return sympy.expand(sympy.powsimp(sympy.expand(sympy.sympify(e).xreplace(sub).xreplace(back))))

    E = sympy.exp(mu)
    ef, ei = sympy.exp(v["ftilde"][0]), sympy.exp(v["itilde"][0])
    kv, vv, q = list(v["k"]), list(v["v"]), list(v["q"])
    want_C = [ef * Cb[i] + ei * vv[i // n] * kv[i % n] for i in range(n * n)]
    want_n = [ef * nb[i] + ei * kv[i] for i in range(n)]
    ok = all(norm(E * x - w) == 0 for x, w in zip(v["C"], want_C))
    ok = ok and all(norm(E * x - w) == 0 for x, w in zip(v["n"], want_n))
    den = v["denom"][0]
    if not isinstance(den, sympy.Max) or len(den.args) != 2:
        return False, f"{c.name}: the normaliser is not max(., .): {den}"
    z_true = sum(w * qi for w, qi in zip(want_n, q))
    # e^mu > 0, so e^mu |z| = |e^mu z|: each argument of the max times e^mu
    absolute = [a for a in den.args if isinstance(a, sympy.Abs)]
    other = [a for a in den.args if not isinstance(a, sympy.Abs)]
    ok = (ok and len(absolute) == len(other) == 1
          and norm(E * absolute[0].args[0] - z_true) == 0 and norm(E * other[0]) == 1)
    num = [sum(v["C"][i * n + j] * q[j] for j in range(n)) for i in range(n)]
    ok = ok and all(norm(h * den - oi * x) == 0 for h, oi, x in zip(v["h"], v["o"], num))
    return ok, (f"with m_t replaced by any mu and C_(t-1) = Cbar e^(-m_(t-1)), n_(t-1) = nbar "
                f"e^(-m_(t-1)) (explicit {c.name} at H = {n}): e^mu C_t = e^ftilde Cbar + e^itilde "
                f"v k^T, e^mu n_t = e^ftilde nbar + e^itilde k, the normaliser's arguments times "
                f"e^mu are |(e^mu n_t)^T q| and 1, so h_t = o (e^mu C_t q) / max(|(e^mu n_t)^T q|, "
                f"1) is free of mu and m_(t-1) (SymPy expand and powsimp)")


# ---------------------------------------------------------------------------------------
# float checks on the generated kernels
# ---------------------------------------------------------------------------------------

#: (seed, H, beta, input scale)
CASES = st.tuples(st.integers(0, 2 ** 31 - 1), st.integers(1, 5), st.floats(0.01, 0.99),
                  st.floats(0.1, 3.0))


def _gdn_case(case, cell="gated_deltanet"):
    """Kernel, params, x, state and the drawn unit k and beta: W_k = k x^T / (x^T x) makes
    W_k x = k, and w_beta = 0, b_beta = logit(beta) make the gate beta (one batch row)."""
    seed, H, beta, scale = case
    K = derive.kernels(resolve_cell(cell))
    rng = numpy.random.default_rng(seed)
    D = 3
    p = {name: a * scale for name, a in K.init_params(D, H, rng=rng).items()}
    x = rng.standard_normal((1, D))
    k = rng.standard_normal(H)
    k /= numpy.linalg.norm(k)
    p["W_k"] = numpy.outer(k, x[0]) / (x[0] @ x[0])
    p["w_beta"] = numpy.zeros(D)
    p["b_beta"] = numpy.array([numpy.log(beta / (1 - beta))])
    state = (rng.standard_normal((1, H, H)), rng.standard_normal((1, H)))
    return K, p, x, state, k, rng


def eigenvalue_check(cell="gated_deltanet"):
    """check(case): ΔS = u k^T and ΔS = u w^T (w ⊥ k) are eigenvectors of the S-block of
    step_jvp with eigenvalues in [alpha (1 - beta), alpha] and equal to alpha (relative 1e-9;
    the kernel's k has norm 1/sqrt(1 + eps), eps = 1e-6 of its l2 normalisation, so its
    eigenvalue is alpha (1 - beta/(1 + eps)), inside the interval), alpha computed here."""
    return functools.partial(_check_eigenvalues, cell=cell)


def _check_eigenvalues(case, cell):
    K, p, x, state, k, rng = _gdn_case(case, cell)
    beta = case[2]
    H = k.size
    u = rng.standard_normal(H)
    w = rng.standard_normal(H)
    w -= (w @ k) * k
    z = numpy.zeros((1, H))
    alpha = float(numpy.exp(-numpy.exp(p["a"][0]) * numpy.logaddexp(
        0.0, x[0] @ p["w_alpha"] + p["b_alpha"][0])))
    probes = [(numpy.outer(u, k), (alpha * (1 - beta), alpha), "k")]
    if H > 1 and numpy.linalg.norm(w) > 1e-6:
        probes.append((numpy.outer(u, w), (alpha, alpha), "w"))
    for dS, (low, high), name in probes:
        got = K.step_jvp(p, x, state, (dS[None], z))[0][0]
        lam = float((got * dS).sum() / (dS * dS).sum())
        tol = 1e-9 * max(1.0, abs(dS).max())
        if not numpy.allclose(got, lam * dS, rtol=1e-9, atol=tol):
            raise PropertyFailure(f"ΔS = u·{name}ᵀ is not an eigenvector of the S-block "
                                  f"(max diff {numpy.abs(got - lam * dS).max():.3g})")
        if not low * (1 - 1e-9) - 1e-15 <= lam <= high * (1 + 1e-9) + 1e-15:
            raise PropertyFailure(f"eigenvalue {lam:.9g} of ΔS = u·{name}ᵀ is outside "
                                  f"[alpha (1 - beta), alpha] = [{low:.9g}, {high:.9g}]")


@functools.lru_cache(maxsize=None)
def _held(cell):
    c = resolve_cell(cell)
    return derive.kernels(c.holding("m"))


def stabiliser_check(cell="mlstm"):
    """check(case): the backward of cell.holding("m") equals the full BPTT for every parameter
    gradient (float64, 1e-9 relative to the largest entry) over T = 3 steps."""
    return functools.partial(_check_stabiliser, cell=cell)


def _check_stabiliser(case, cell):
    seed, H, _, scale = case
    K = derive.kernels(resolve_cell(cell))
    rng = numpy.random.default_rng(seed)
    p = {n: a * scale for n, a in K.init_params(3, H, rng=rng).items()}
    xs = rng.standard_normal((3, 2, 3))
    s0 = (rng.standard_normal((2, H, H)), rng.standard_normal((2, H)),
          rng.standard_normal((2, 1)), rng.standard_normal((2, H)))
    dhs = rng.standard_normal((3, 2, H))
    compare_held(K, _held(cell), p, xs, s0, dhs)


#: (id, statement, proof, float check)
MATRIX_CLAIMS = [
    ("gated_deltanet.delta_rule.eigenvalues", "Gated DeltaNet: for a unit key k the eigenvalues "
     "of I - beta k k^T are 1 - beta and 1, in [1 - beta, 1], so dS_t/dS_(t-1) = alpha (ΔS ↦ ΔS "
     "(I - beta k k^T)) has eigenvalues alpha (1 - beta) and alpha.", _proof_eigenvalues,
     eigenvalue_check()),
    ("mlstm.stabiliser", "mLSTM: the output h does not depend on the stabiliser m, so the "
     "backward pass with m held constant (cell.holding('m')) gives the full BPTT gradient of "
     "every parameter.", _proof_stabiliser, stabiliser_check()),
]


def claim_specs(spec_type, run_property):
    """The claims as records (see :func:`verify.modern_claims.claim_specs`)."""
    return modern_claim_specs(spec_type, run_property, MATRIX_CLAIMS, CASES)
