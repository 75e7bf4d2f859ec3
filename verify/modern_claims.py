"""Claims about the 2024-26 cells (minGRU, minLSTM, sLSTM, LRU), proved from their specs.

Each proof expands the cell's own equations into explicit scalars (:mod:`verify.explicit`,
H = 1 or 2) and lets SymPy decide the identity; each float check runs the generated kernels on
Hypothesis-drawn parameters. A proof returns ``(holds, statement)``.

* ``minlstm.gates.sum``: f'_t + i'_t = f/(f + i) + i/(f + i) = 1 (SymPy ``cancel``);
* ``mingru.jacobian.diagonal`` / ``minlstm.jacobian.diagonal``: dh_t/dh_{t-1} is diagonal
  and free of h_{t-1} (SymPy's ``Matrix.jacobian`` at H = 2), the gates see x only;
* ``slstm.stabiliser``: with m_t replaced by any value mu and the stored states written as
  c_{t-1} = c e^{-m_{t-1}}, n_{t-1} = n e^{-m_{t-1}}, the unstabilised states e^{mu} c_t =
  e^{f~} c + e^{i~} z_t and e^{mu} n_t = e^{f~} n + e^{i~}, and h_t, are free of mu and
  m_{t-1}: the outputs do not depend on the stabiliser, so holding m constant in the backward
  pass (``cell.holding("m")``) changes no gradient of a parameter, an input, c_0, n_0 or h_0;
* ``lnlstm.cell_state.diagonal``: dc_t/dc_{t-1} = diag(f_t) (SymPy at H = 2), though layer
  norm makes the rest of the step Jacobian dense;
* ``lru.contraction``: |lambda|^2 = (lambda^re)^2 + (lambda^im)^2 = exp(-2 exp(nu)) < 1 for
  every real nu (SymPy), so the step Jacobian, a rotation-scaling per unit, has 2-norm
  max |lambda_j| < 1.
"""
from __future__ import annotations

import functools

import numpy
import sympy
from hypothesis import strategies as st

import derive

from .explicit import expand
from .scalar_properties import PropertyFailure


def _proof_gates_sum():
    ex = expand("minlstm", 1)
    total = sympy.cancel(ex.values["fprime"][0] + ex.values["iprime"][0])
    return total == 1, "f/(f + i) + i/(f + i) = 1 by SymPy's cancel of the explicit minlstm equations"


def _proof_diagonal(name):
    def prove():
        ex = expand(name, 2)
        J = ex.oracle_jacobian("h", "h")
        free = not (J.free_symbols & set(ex.prev_symbols("h")))
        return (free and J[0, 1] == 0 and J[1, 0] == 0,
                f"SymPy's Matrix.jacobian of the explicit {name} step at H = 2 is diagonal "
                f"and free of h_(t-1)")
    return prove


def _proof_stabiliser():
    ex = expand("slstm", 1)
    v = {k: val[0] for k, val in ex.values.items()}
    (m_prev,), (c_prev,), (n_prev,) = (ex.prev_symbols(s) for s in ("m", "c", "n"))
    mu, cb = sympy.symbols("mu cbar", real=True)
    nb = sympy.Symbol("nbar", positive=True)
    sub = {v["m"]: mu}                                   # m_t = max(...) -> any value mu
    back = {c_prev: cb * sympy.exp(-m_prev), n_prev: nb * sympy.exp(-m_prev)}

    def norm(e):
        """exp products merged (powsimp) and expanded: a canonical sum of exp monomials."""
        return sympy.expand(sympy.powsimp(sympy.expand(e.xreplace(sub).xreplace(back))))

    c_true, n_true = norm(sympy.exp(mu) * v["c"]), norm(sympy.exp(mu) * v["n"])
    want_c = sympy.exp(v["ftilde"]) * cb + sympy.exp(v["itilde"]) * v["z"]
    want_n = sympy.exp(v["ftilde"]) * nb + sympy.exp(v["itilde"])
    ok = (norm(c_true - want_c) == 0 and norm(n_true - want_n) == 0
          and norm(v["h"] * sympy.exp(mu) * v["n"] - v["o"] * sympy.exp(mu) * v["c"]) == 0)
    return ok, ("with m_t replaced by any mu and c_(t-1) = cbar e^(-m_(t-1)), n_(t-1) = nbar "
                "e^(-m_(t-1)): e^mu c_t = e^ftilde cbar + e^itilde z_t, e^mu n_t = e^ftilde nbar "
                "+ e^itilde and h_t (e^mu n_t) = o_t (e^mu c_t), free of mu and m_(t-1) (SymPy "
                "expand and powsimp of the explicit slstm equations)")


def _proof_lnlstm_cell_state():
    ex = expand(derive.cell("lnlstm"), 2)
    J = ex.oracle_jacobian("c", "c")
    f = ex.values["f"]
    ok = (J[0, 1] == 0 and J[1, 0] == 0 and all(sympy.expand(J[i, i] - f[i]) == 0 for i in (0, 1))
          and not (J.free_symbols & set(ex.prev_symbols("c"))))
    return ok, ("SymPy's Matrix.jacobian of the explicit lnlstm step at H = 2: dc_t/dc_(t-1) = "
                "diag(f_t), free of c_(t-1) (layer norm acts on the gates' inputs and on c_t "
                "after the update, not on the path c_(t-1) -> c_t)")


def check_block_diagonal(name, state):
    """The kernel's step Jacobian block d state_t / d state_(t-1) has exact zeros off its diagonal."""
    def check(case):
        k, p, xs, s0 = _draw(name, case)
        j = k.STATE.index(state)
        H = s0[0].shape[1]
        block = k.step_jacobian(p, xs[0], s0)[:, j * H:(j + 1) * H, j * H:(j + 1) * H]
        off = block * (1 - numpy.eye(H))
        if off.any():
            raise PropertyFailure(f"off-diagonal entry {numpy.abs(off).max()}")
    return check


def _proof_lru():
    ex = expand("lru", 1)
    lam2 = sympy.simplify(ex.values["lam_re"][0] ** 2 + ex.values["lam_im"][0] ** 2)
    nu, = ex.symbols_of("nu")
    want = sympy.exp(-2 * sympy.exp(nu))
    exponent_negative = sympy.ask(sympy.Q.negative(-2 * sympy.exp(nu)), sympy.Q.real(nu))
    return (sympy.simplify(lam2 - want) == 0 and exponent_negative is True,
            "|lambda|^2 = (lambda^re)^2 + (lambda^im)^2 = exp(-2 exp(nu)) (SymPy simplify of the "
            "explicit lru equations) and -2 exp(nu) < 0 for real nu (SymPy ask), so |lambda| < 1")


# ---------------------------------------------------------------------------------------
# float checks on the generated kernels
# ---------------------------------------------------------------------------------------

CASES = st.tuples(st.integers(0, 2 ** 31 - 1), st.integers(1, 4), st.integers(1, 3),
                  st.floats(0.1, 3.0))


def _draw(name, case, steps=1):
    seed, hidden, inputs, scale = case
    k = derive.kernels(derive.cell(name))
    rng = numpy.random.default_rng(seed)
    p = {n: a * scale for n, a in k.init_params(inputs, hidden, rng=rng).items()}
    xs = rng.standard_normal((steps, 2, inputs))
    s0 = [rng.standard_normal((2, hidden)) for _ in k.STATE]
    if "n" in k.STATE:
        s0[k.STATE.index("n")] = rng.uniform(0.5, 2.0, (2, hidden))
    return k, p, xs, tuple(s0)


def check_diagonal(name):
    """The kernel's step Jacobian has exact zeros off the diagonal."""
    def check(case):
        k, p, xs, s0 = _draw(name, case)
        J = k.step_jacobian(p, xs[0], s0)
        off = J * (1 - numpy.eye(J.shape[-1]))
        if off.any():
            raise PropertyFailure(f"off-diagonal entry {numpy.abs(off).max()}")
    return check


def check_lru_contraction(case):
    """||ds_t/ds_{t-1}||_2 < 1 for the kernel's step Jacobian, nu and theta of any scale."""
    k, p, xs, s0 = _draw("lru", case)
    norms = numpy.linalg.norm(k.step_jacobian(p, xs[0], s0), ord=2, axis=(1, 2))
    if not (norms < 1).all():
        raise PropertyFailure(f"step Jacobian norm {norms.max()} >= 1")


@functools.lru_cache(maxsize=None)
def _held_slstm():
    return derive.kernels(derive.cell("slstm").holding("m"))


def check_stabiliser(case):
    """The backward of cell.holding("m") equals the full BPTT for every parameter gradient
    (float64, 1e-9 relative to the largest entry) over T = 3 steps."""
    k, p, xs, s0 = _draw("slstm", case, steps=3)
    dhs = numpy.random.default_rng(case[0] + 1).standard_normal((3,) + s0[0].shape)
    compare_held(k, _held_slstm(), p, xs, s0, dhs)


def compare_held(k, held, p, xs, s0, dhs):
    """PropertyFailure unless the kernels ``held`` (a cell with a state held constant) give
    the full BPTT gradient of ``k`` for every parameter (float64, 1e-9 relative)."""
    g1, _ = k.backward(p, k.forward(p, xs, s0)[1], dhs)
    g2, _ = held.backward(p, held.forward(p, xs, s0)[1], dhs)
    for n in p:
        tol = 1e-9 * max(1.0, float(numpy.abs(g1[n]).max()))
        if not numpy.allclose(g1[n], g2[n], rtol=0, atol=tol):
            raise PropertyFailure(f"{n}: held {g2[n]} vs full {g1[n]}")


#: (id, statement, proof, float check or None)
MODERN_CLAIMS = [
    ("minlstm.gates.sum", "minLSTM: the normalised gates f' = f/(f + i) and i' = i/(f + i) "
     "sum to 1.", _proof_gates_sum, None),
    ("mingru.jacobian.diagonal", "minGRU: dh_t/dh_(t-1) = diag(1 - z_t) is exactly diagonal "
     "(the gates see x only).", _proof_diagonal("mingru"), check_diagonal("mingru")),
    ("minlstm.jacobian.diagonal", "minLSTM: dh_t/dh_(t-1) = diag(f'_t) is exactly diagonal "
     "(the gates see x only).", _proof_diagonal("minlstm"), check_diagonal("minlstm")),
    ("slstm.stabiliser", "sLSTM: the outputs do not depend on the stabiliser m, so the "
     "backward pass with m held constant (cell.holding('m'), what the xLSTM kernels do) gives "
     "the full BPTT gradient of every parameter.", _proof_stabiliser, check_stabiliser),
    ("lnlstm.cell_state.diagonal", "Layer-norm LSTM: its step Jacobian is dense (layer norm "
     "couples the units), but dc_t/dc_(t-1) = diag(f_t) stays diagonal: the LSTM's gradient "
     "path through the cell state survives layer norm.", _proof_lnlstm_cell_state,
     check_block_diagonal("lnlstm", "c")),
    ("lru.contraction", "LRU: |lambda| = exp(-exp(nu)) < 1 for every nu, so the state map is a "
     "contraction (||ds_t/ds_(t-1)||_2 < 1).", _proof_lru, check_lru_contraction),
]


def claim_specs(spec_type, run_property, claims=None, cases=None):
    """The claims (default :data:`MODERN_CLAIMS`; ``cases``: their Hypothesis strategy) as
    ``spec_type(id, statement, "toolkit", run)`` records; ``run_property(check, strategy, ctx)``
    runs a float check under Hypothesis and returns ``(examples, failure)``."""
    claims = MODERN_CLAIMS if claims is None else claims
    cases = CASES if cases is None else cases

    def make(proof, check):
        def run(ctx):
            n, fail = (0, None) if check is None else run_property(check, cases, ctx)
            if fail:
                return dict(verdict="refuted", examples=n, counterexample=fail[1],
                            evidence=f"kernel check failed: {fail[0]}")
            ok, how = proof()
            if not ok:
                return dict(verdict="refuted", examples=n, evidence=f"proof failed: {how}")
            also = f"; kernel check on {n} Hypothesis examples, no failure" if check else ""
            return dict(verdict="proved", examples=n, evidence=how + also)
        return run
    return [spec_type(i, text, "toolkit", make(proof, check))
            for i, text, proof, check in claims]
