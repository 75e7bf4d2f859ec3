"""The seed note's statements as data (``shared/seeds/000_7c63b3d90ffb5fcb.txt``).

Each :class:`SeedClaim` quotes one formula of the seed note verbatim (``quote_latex``),
says in one sentence whether and why it holds (``explanation``), and computes

* ``holds``: whether the statement is true, decided from the derivation engine where that is
  possible (the seed's formula is transcribed into the spec language, parsed by the project's
  safe parser and compared with the derived result of the matching built-in cell), otherwise
  a stated verdict (``holds_from == "stated"``, with ``stated_because`` saying why no
  derivation decides it; the claims report ``python -m verify`` then backs it with a
  numerical counterexample);
* ``corrected()``: the correct form as derived SymPy expression(s), or None when the seed is
  right.

The LaTeX document (issue 7) and the claims report (``verify.claims``) both read
:data:`SEED_CLAIMS`; the ids are stable. ``erratum`` lists the item numbers of section 9 of
``shared/reference/equations.md`` that the claim covers (every item 1-11 is covered).

>>> from derive.seed.claims import SEED_CLAIMS, seed_claim
>>> seed_claim("seed.eq2").holds
False
>>> seed_claim("seed.rnn_jacobian").corrected()
DiagMatrix(SigmoidPrime(a))*W_hh
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy

from derive.spec.registry import cell
from derive.spec.tables import SpecError, parse_spec

__all__ = ["SeedClaim", "SEED_CLAIMS", "seed_claim", "seed_ids", "SEED_PATH"]

#: Where the seed note lives in the shared workspace (for citations in reports).
SEED_PATH = "shared/seeds/000_7c63b3d90ffb5fcb.txt"


@dataclass(frozen=True)
class SeedClaim:
    """One statement of the seed note.

    ``quote_latex`` is the seed's own LaTeX (its codecogs ``title`` text) with the trailing
    ``\\tag{n}`` moved to ``seed_tag``; a quote of several equations (``seed.lstm_equations``)
    has one equation per line, separated by newlines, for the caller to set in an aligned
    environment. ``statement`` paraphrases the claim in English.
    ``cell`` names the built-in cell whose derivations decide it and give the correction;
    ``corrected_lhs_latex`` is the left-hand side to print before ``corrected()`` (when the
    correction is none of the derived results, whose names the document knows);
    ``refs`` is ``(cell, (label, ...))``: the equations of that cell's section that derive
    the claim in full. The verdict is either derived (``_decide``, a comparison with a
    derivation) or stated (``_stated``); a stated one says why in ``stated_because`` when a
    comparison would only be of constants fixed by the claim's own construction.
    """
    id: str
    statement: str
    quote_latex: str
    explanation: str
    erratum: tuple = ()
    cell: str | None = None
    seed_tag: str | None = None
    corrected_lhs_latex: str | None = None
    corrected_lhs_text: str | None = None
    quote_note: str = ""
    refs: tuple | None = None
    stated_because: str = ""
    _decide: Callable[[], bool] = field(default=None, repr=False, compare=False)
    _stated: bool | None = field(default=None, repr=False, compare=False)
    _correct: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if (self._decide is None) == (self._stated is None):
            raise ValueError(f"seed claim {self.id}: give exactly one of a decider and a "
                             f"stated verdict")
        if self.stated_because and self._decide is not None:
            raise ValueError(f"seed claim {self.id}: a derived verdict has no stated_because")

    @property
    def holds_from(self) -> str:
        """``"derived"`` when ``holds`` is computed by the engine, ``"stated"`` otherwise."""
        return "derived" if self._decide is not None else "stated"

    @property
    def holds(self) -> bool:
        """Whether the seed's statement is true (computed once, then cached)."""
        if self.id not in _HOLDS:
            _HOLDS[self.id] = bool(self._decide()) if self._decide is not None else bool(self._stated)
        return _HOLDS[self.id]

    def corrected(self):
        """The derived correct form (a SymPy expression or a tuple of them), or None; derived
        once per process (the article and the corrected note both print it)."""
        if self._correct is None:
            return None
        if self.id not in _CORRECTED:
            _CORRECTED[self.id] = self._correct()
        return _CORRECTED[self.id]


_HOLDS: dict = {}
_CORRECTED: dict = {}


# ---------------------------------------------------------------------------------------
# the seed's formulas transcribed into the spec language (a quotation, parsed safely)
# ---------------------------------------------------------------------------------------

_RNN_HEAD = """
[cell]
name = "seed_rnn"
states = ["h"]
[params]
W_xh = ["H", "D"]
W_hh = ["H", "H"]
b_h = ["H"]
[equations]
h = "sigmoid(W_xh @ x + W_hh @ h_prev + b_h)"
"""

# Seed eq. (2) as written: y_t = W_hy + b_y.
_RNN_READOUT = """
[readout_params]
W_hy = ["H", "H"]
b_y = ["H"]
[readout]
y = "W_hy + b_y"
"""

# The seed's LSTM, read with Graves' conventions (diagonal peepholes stored as vectors,
# elementwise products), with the candidate written inline as the seed writes it.
_LSTM = """
[cell]
name = "seed_lstm"
states = ["h", "c"]
[params]
W_xi = ["H", "D"]
W_hi = ["H", "H"]
W_ci = ["H"]
b_i = ["H"]
W_xf = ["H", "D"]
W_hf = ["H", "H"]
W_cf = ["H"]
b_f = ["H"]
W_xc = ["H", "D"]
W_hc = ["H", "H"]
b_c = ["H"]
W_xo = ["H", "D"]
W_ho = ["H", "H"]
W_co = ["H"]
b_o = ["H"]
[equations]
i = "sigmoid(W_xi @ x + W_hi @ h_prev + W_ci * c_prev + b_i)"
f = "sigmoid(W_xf @ x + W_hf @ h_prev + W_cf * c_prev + b_f)"
c = "f * c_prev + i * tanh(W_xc @ x + W_hc @ h_prev + b_c)"
o = "sigmoid(W_xo @ x + W_ho @ h_prev + W_co * c + b_o)"
h = "o * tanh(c)"
"""


def seed_rnn_error() -> str | None:
    """The parser's verdict on the seed's RNN with its eq. (2): the error message, or None."""
    try:
        parse_spec(_RNN_HEAD + _RNN_READOUT, path="seed eq. (2)")
    except SpecError as exc:
        return exc.message
    return None


def expand(c, name, keep=()):
    """The definition of equation ``name`` of cell ``c`` with every intermediate equation
    substituted, down to inputs, previous states and parameters (names in ``keep`` stay)."""
    expr = c.definition(name)
    while True:
        subs = {c.symbol(v): c.definition(v) for v in _var_names(expr)
                if v not in keep and v != name}
        if not subs:
            return expr
        expr = expr.xreplace(subs)


def _var_names(expr):
    from derive.core.symbols import Var
    return sorted({a.name for a in expr.atoms(sympy.MatrixSymbol) if isinstance(a, Var)})


def _same_cell(seed_spec, name, states):
    """Every state of the seed's transcription equals the built-in cell's, fully expanded."""
    seed = parse_spec(seed_spec, path=f"seed transcription of {name}")
    ref = cell(name)
    return all(expand(seed, s) == expand(ref, s) for s in states)


# ---------------------------------------------------------------------------------------
# deciders: each compares the seed's literal statement with a derived result
# ---------------------------------------------------------------------------------------

def _x():
    return sympy.Symbol("x", real=True)


def _sigmoid_prime_is_sigma_one_minus_sigma():
    from derive.core.primitives import Sigmoid, SigmoidPrime
    x = _x()
    return sympy.cancel(sympy.together((sympy.diff(Sigmoid.scalar(x), x)
                                        - SigmoidPrime.scalar(x)).rewrite(sympy.exp))) == 0


def _zero_attained_by_sigmoid_prime():
    """Is 0 in the image of sigma' over the reals? (The seed's range [0, 0.25] says yes.)"""
    from derive.core.primitives import SigmoidPrime
    x = _x()
    return sympy.solveset(sympy.Eq(SigmoidPrime.scalar(x), 0), x, sympy.S.Reals) != sympy.S.EmptySet


def _sigmoid_prime_range():
    """(0, gamma]: gamma = sup sigma' (attained at 0), infimum 0 approached at +-oo, never attained."""
    from derive.core.elementwise import limit_at
    from derive.core.primitives import SigmoidPrime, Sigmoid
    x = _x()
    inf = limit_at(SigmoidPrime.scalar(x), x, sympy.oo)      # exact; Gruntz only if needed
    return sympy.Interval(inf, Sigmoid.gamma(), left_open=not _zero_attained_by_sigmoid_prime())


def _gate_range_is_open_unit_interval():
    from derive.core.elementwise import limit_at
    from derive.core.primitives import Sigmoid
    x = _x()
    s = Sigmoid.scalar(x)
    lo, hi = limit_at(s, x, -sympy.oo), limit_at(s, x, sympy.oo)
    never = all(sympy.solveset(sympy.Eq(s, v), x, sympy.S.Reals) == sympy.S.EmptySet for v in (lo, hi))
    return (lo, hi) == (0, 1) and never




def _vanishing_condition():
    from derive.core.primitives import Sigmoid
    return sympy.StrictLessThan(sympy.Symbol("lambda_1", positive=True), 1 / Sigmoid.gamma())


def _rnn_jacobian_is_sigma_prime_times_W():
    """The seed's sigma' W_hh: sigma'(a) is an (H, 1) vector, so as a matrix product it is only
    defined if the derived Jacobian has no diagonal factor; compare with the derived form."""
    from derive.core.primitives import SigmoidPrime
    c = cell("rnn_sigmoid")
    W = c.symbol("W_hh")
    sp = SigmoidPrime(c.symbol("a"))
    conformable = sp.shape[1] == W.shape[0]
    return bool(conformable) and c.jacobian("h", "h") == sympy.MatMul(sp, W)




def _cell_jacobian_is_f():
    c = cell("lstm_peephole")
    from derive.core.algebra import diag
    return c.jacobian("c", "c") == diag(c.symbol("f"))




def _output_gate_sees_new_c():
    c = cell("lstm_peephole")
    obar = c.definition("obar")
    names = {a.name for a in obar.atoms(sympy.MatrixSymbol)}
    return "c" in names and "c_prev" not in names


def _pytorch_default_is_sigmoid():
    """The seed: the hidden activation 'is generally the sigmoid'. PyTorch's default Elman
    nonlinearity (the rnn_tanh cell's [torch] table) and gamma decide it."""
    from derive.core.primitives import Sigmoid, Tanh
    torch = cell("rnn_tanh").torch or {}
    return torch.get("nonlinearity") == "sigmoid" or Sigmoid.gamma() == Tanh.gamma()


# ---------------------------------------------------------------------------------------
# the claims
# ---------------------------------------------------------------------------------------

_BPTT = (r"\frac{\partial L_{t}}{\partial W^{h}}=\sum_{t=0}^{T} \sum_{k=0}^{t} "
         r"\frac{\partial L_{t}}{\partial y_{t}} \frac{\partial y_{t}}{\partial h_{t}}"
         r"\left(\prod_{j=k+1}^{t} \frac{\partial h_{j}}{\partial h_{j-1}}\right)")

#: Why the BPTT claims' verdict is stated: the shapes compared are fixed by the construction.
_SHAPES_BECAUSE = ("(1, H) == (H, H): a summand dL_t/dy_t dy_t/dh_t prod dh_j/dh_(j-1) is a "
                   "1 x H row, the gradient of W_hh an H x H matrix, whatever the cell")

_LSTM_QUOTE = "\n".join([
    r"i_{t} =\sigma\left(W_{x i} x_{t}+W_{h i} h_{t-1}+W_{c i} c_{t-1}+b_{i}\right)",
    r"f_{t} =\sigma\left(W_{x f} x_{t}+W_{h f} h_{t-1}+W_{c f} c_{t-1}+b_{f}\right)",
    r"c_{t} =f_{t} c_{t-1}+i_{t} \tanh \left(W_{x c} x_{t}+W_{h c} h_{t-1}+b_{c}\right)",
    r"o_{t} =\sigma\left(W_{x o} x_{t}+W_{h o} h_{t-1}+W_{c o} c_{t}+b_{o}\right)",
    r"h_{t} =o_{t} \tanh \left(c_{t}\right)",
])


SEED_CLAIMS: list[SeedClaim] = [
    SeedClaim(
        id="seed.eq1", seed_tag="1", cell="rnn_sigmoid", erratum=(),
        statement="The Elman RNN step is h_t = sigma(W_xh x_t + W_hh h_{t-1} + b_h).",
        quote_latex=r"h_{t}=\sigma \left ( W_{xh}x_{t} + W_{hh}h_{t-1}+b_{h}\right)",
        explanation="Eq. (1) is the rnn_sigmoid cell exactly: parsed as written it equals the "
                    "built-in definition with the pre-activation a_t substituted.",
        _decide=lambda: _same_cell(_RNN_HEAD, "rnn_sigmoid", ("h",))),
    SeedClaim(
        id="seed.activation", cell="rnn_tanh", erratum=(2,),
        statement="The hidden activation sigma of eq. (1) is generally the sigmoid function, "
                  "the same sigma whose derivative is sigma(1 - sigma) below.",
        quote_latex=r"\sigma",
        quote_note="The seed: sigma in eq. (1) is the hidden layer's activation, generally the "
                   "Sigmoid function.",
        explanation="Elman RNNs in practice (PyTorch's default, min-char-rnn) use tanh, and the "
                    "choice is not cosmetic: gamma = sup phi' is 1/4 for the sigmoid but 1 for "
                    "tanh, which moves Pascanu's threshold from ||W_hh||_2 < 4 to < 1; name the "
                    "activation phi and state it.",
        _decide=_pytorch_default_is_sigmoid,
        _correct=lambda: (cell("rnn_sigmoid").jacobian("h", "h"), cell("rnn_tanh").jacobian("h", "h")),
        corrected_lhs_latex=r"\frac{\partial h_t}{\partial h_{t-1}}", corrected_lhs_text="dh_t/dh_{t-1}"),
    SeedClaim(
        id="seed.eq2", seed_tag="2", cell="rnn_sigmoid", erratum=(1,),
        statement="The readout is y_t = W_hy + b_y.",
        quote_latex=r"y_{t}=W_{hy}+b_{y}",
        explanation="Eq. (2) drops h_t: as written it adds an H x H matrix to a vector and does "
                    "not depend on the state; the readout is y_t = W_hy h_t + b_y.",
        _decide=lambda: seed_rnn_error() is None,
        _correct=lambda: cell("rnn_sigmoid").definition("y"),
        corrected_lhs_latex="y_t", corrected_lhs_text="y_t"),
    SeedClaim(
        id="seed.bptt", cell="rnn_sigmoid", erratum=(3, 4, 5, 6),
        refs=("rnn_sigmoid", ("bptt_sum", "bptt_matrix", "rec_Delta_h")),
        statement="BPTT: dL_t/dW^h = sum_{t=0}^T sum_{k=0}^t dL_t/dy_t dy_t/dh_t "
                  "prod_{j=k+1}^t dh_j/dh_{j-1}.",
        quote_latex=_BPTT,
        explanation="The formula is not the gradient of any loss with respect to W_hh: it "
                    "misses the immediate partial d+h_k/dW_hh (each summand is a 1 x H row, "
                    "not an H x H matrix), sums over t on the right of a single L_t, leaves the "
                    "product order open and starts at t = k = 0 although h_0 is given.",
        _stated=False,
        stated_because=_SHAPES_BECAUSE,
        _correct=lambda: cell("rnn_sigmoid").backward().params["W_hh"],
        corrected_lhs_latex=r"\delta W_{hh}\big|_{t}", corrected_lhs_text="dL/dW_hh, step t contribution"),
    SeedClaim(
        id="seed.bptt.total_loss", cell="rnn_sigmoid", erratum=(3,),
        refs=("rnn_sigmoid", ("bptt_sum",)),
        statement="The left side dL_t/dW^h (one step's loss) equals a sum over all steps t.",
        quote_latex=_BPTT,
        explanation="The right side sums over t, so it is the gradient of the total loss "
                    "L = sum_t L_t: write dL/dW_hh = sum_t dL_t/dW_hh.",
        _stated=False),
    SeedClaim(
        id="seed.bptt.immediate_partial", cell="rnn_sigmoid", erratum=(4,),
        refs=("rnn_sigmoid", ("immediate", "bptt_matrix")),
        statement="Each BPTT summand ends with the product of Jacobians dh_j/dh_{j-1}.",
        quote_latex=_BPTT,
        explanation="Without the trailing immediate partial d+h_k/dW_hh each summand is "
                    "dL_t/dh_k, a 1 x H row, not an H x H gradient; contracted, the summand is "
                    "[phi'(a_k) * (...)] h_{k-1}^T, which is the derived per-step delta_a h_prev^T.",
        _stated=False,
        stated_because=_SHAPES_BECAUSE,
        _correct=lambda: cell("rnn_sigmoid").backward().params["W_hh"],
        corrected_lhs_latex=r"\delta W_{hh}\big|_{t}", corrected_lhs_text="dL/dW_hh, step t contribution"),
    SeedClaim(
        id="seed.bptt.product_order", cell="rnn_sigmoid", erratum=(5,),
        refs=("rnn_sigmoid", ("bptt_sum",)),
        statement="The product prod_{j=k+1}^t dh_j/dh_{j-1} may be taken in any order.",
        quote_latex=r"\prod_{j=k+1}^{t} \frac{\partial h_{j}}{\partial h_{j-1}}",
        explanation="The Jacobians are matrices that do not commute; the product must be "
                    "ordered J_t J_{t-1} ... J_{k+1} (numerator layout), the empty product "
                    "(k = t) being the identity.",
        _stated=False,
        _correct=lambda: cell("rnn_sigmoid").jacobian("h", "h"),
        corrected_lhs_latex=r"J_j = \frac{\partial h_j}{\partial h_{j-1}}", corrected_lhs_text="J_j = dh_j/dh_{j-1}"),
    SeedClaim(
        id="seed.bptt.index_range", cell="rnn_sigmoid", erratum=(6,),
        statement="The BPTT sums run over 0 <= k <= t <= T, and W^h names the recurrent matrix.",
        quote_latex=r"\sum_{t=0}^{T} \sum_{k=0}^{t}",
        explanation="With h_0 given, step 0 has no W_hh-dependence (k = 0 would need h_{-1}); "
                    "the sums are 1 <= k <= t <= T, and W^h and W_hh name the same matrix "
                    "inconsistently.",
        _stated=False),
    SeedClaim(
        id="seed.rnn_jacobian", cell="rnn_sigmoid", erratum=(7,),
        refs=("rnn_sigmoid", ("J_h_h",)),
        statement="dh_t/dh_{t-1} = sigma' W_hh.",
        quote_latex=r"\frac{\partial h_{t}}{\partial h_{t-1} } = \sigma ^{'}W_{hh}",
        explanation="The Jacobian is diag(sigma'(a_t)) W_hh: a diagonal matrix of sigma' at the "
                    "current pre-activation multiplying W_hh from the left, with "
                    "sigma'(a_t) = h_t (1 - h_t), not sigma(h_t)(1 - sigma(h_t)).",
        _decide=_rnn_jacobian_is_sigma_prime_times_W,
        _correct=lambda: cell("rnn_sigmoid").jacobian("h", "h"),
        corrected_lhs_latex=r"\frac{\partial h_t}{\partial h_{t-1}}", corrected_lhs_text="dh_t/dh_{t-1}"),
    SeedClaim(
        id="seed.sigmoid_derivative", cell="rnn_sigmoid", erratum=(),
        statement="sigma' = sigma (1 - sigma).",
        quote_latex=r"\sigma ^{'}=\sigma\left (1-\sigma \right )",
        explanation="True: the derivative of the logistic sigmoid is sigma(x)(1 - sigma(x)).",
        _decide=_sigmoid_prime_is_sigma_one_minus_sigma),
    SeedClaim(
        id="seed.sigmoid_range", cell="rnn_sigmoid", erratum=(8,),
        refs=("rnn_sigmoid", ("gamma_sigmoid",)),
        statement="sigma' takes values between 0 and 0.25, i.e. in [0, 0.25].",
        quote_latex=r"\sigma ^{'} \in [0, 0.25]",
        quote_note="The seed says in words: sigma' lies between 0 and 0.25.",
        explanation="The range of sigma' is (0, 1/4]: the maximum 1/4 is attained at 0, but "
                    "sigma'(x) > 0 for every real x, so 0 is only a limit (or a floating-point "
                    "underflow).",
        _decide=_zero_attained_by_sigmoid_prime,
        _correct=_sigmoid_prime_range,
        corrected_lhs_latex=r"\sigma'(\mathbb{R})", corrected_lhs_text="range of σ'"),
    SeedClaim(
        id="seed.vanishing", cell="rnn_sigmoid", erratum=(8,),
        refs=("rnn_sigmoid", ("pascanu",)),
        statement="Because sigma' <= 0.25, its repeated product makes the gradient smaller and "
                  "smaller (vanishing gradients).",
        quote_latex=r"\sigma ^{'} \le 0.25 \;\Rightarrow\; \prod_{j=k+1}^{t} "
                    r"\frac{\partial h_{j}}{\partial h_{j-1}} \to 0",
        quote_note="The seed says in words: multiplying such a factor repeatedly makes the "
                   "gradient smaller and smaller.",
        explanation="The bound on sigma' alone does not imply vanishing: W_hh multiplies every "
                    "factor, and vanishing is guaranteed only when the largest singular value "
                    "of W_hh is below 1/gamma = 4 (sufficient); above 4 gradients can explode.",
        _stated=False,
        stated_because="a 1-unit RNN with W_hh = 2/gamma at pre-activation 0 has "
                       "|dh_t/dh_(t-1)| = (2/gamma) sigma'(0) = 2 > 1 at every step: "
                       "the comparison 2 <= 1 is fixed by the construction",
        _correct=_vanishing_condition,
        corrected_lhs_latex=None,
        corrected_lhs_text="vanishing is guaranteed (sufficient condition, lambda_1 = largest "
                           "singular value of W_hh) when"),
    SeedClaim(
        id="seed.lstm_equations", cell="lstm_peephole", erratum=(9,),
        refs=("lstm_peephole", ("ibar",)),
        statement="The peephole LSTM step (Graves 2013, eqs. 7-11).",
        quote_latex=_LSTM_QUOTE,
        quote_note="The seed's LaTeX for i_t ends in '\\right' with no delimiter (it does not "
                   "compile); ')' is restored here. Its c_t line in the LSTM section reads "
                   "h_{t_1} (see seed.typo).",
        explanation="Correct (they are Graves' eqs. 7-11, the lstm_peephole cell) but "
                    "under-specified: W_ci, W_cf, W_co must be diagonal (full matrices give the "
                    "lstm_peephole_full model) and f_t c_{t-1}, i_t tanh(.), o_t tanh(c_t) are "
                    "elementwise products.",
        _decide=lambda: _same_cell(_LSTM, "lstm_peephole", ("h", "c"))),
    SeedClaim(
        id="seed.lstm_output_gate", cell="lstm_peephole", erratum=(9,),
        statement="The input and forget gates see c_{t-1}; the output gate sees the updated c_t.",
        quote_latex=r"o_{t} =\sigma\left(W_{x o} x_{t}+W_{h o} h_{t-1}+W_{c o} c_{t}+b_{o}\right)",
        explanation="True, as in Graves (2013) eq. (10): the output gate's peephole reads the "
                    "new cell state.",
        _decide=_output_gate_sees_new_c),
    SeedClaim(
        id="seed.lstm_cell_jacobian", cell="lstm_peephole", erratum=(10,),
        refs=("lstm_peephole", ("J_c_c", "J_h_c")),
        statement="dc_t/dc_{t-1} = f_t.",
        quote_latex=r"\frac{\partial c_{t}}{\partial c_{t-1}}=f_{t}",
        explanation="Only the direct path with the gates held fixed (and no peepholes) gives "
                    "diag(f_t); for the seed's peephole LSTM the one-step partial has extra "
                    "peephole terms, and across steps c_{t-1} also acts through h_{t-1}, so the "
                    "state Jacobian is a 2 x 2 block matrix.",
        _decide=_cell_jacobian_is_f,
        _correct=lambda: cell("lstm_peephole").jacobian("c", "c"),
        corrected_lhs_latex=r"\frac{\partial c_t}{\partial c_{t-1}}", corrected_lhs_text="dc_t/dc_{t-1}"),
    SeedClaim(
        id="seed.gate_range", cell="lstm_peephole", erratum=(),
        statement="The forget gate f_t = sigma(x) lies between 0 and 1.",
        quote_latex=r"f_{t} =\sigma\left(x\right)",
        quote_note="The seed says in words: sigma has upper limit 1 and lower limit 0.",
        explanation="True: sigma maps the reals onto the open interval (0, 1), so every gate is "
                    "strictly between 0 and 1.",
        _decide=_gate_range_is_open_unit_interval),
    SeedClaim(
        id="seed.typo", cell="lstm_peephole", erratum=(11,),
        statement="c_t = f_t c_{t-1} + i_t tanh(W_xc x_t + W_hc h_{t_1} + b_c).",
        quote_latex=r"c_{t} =f_{t} c_{t-1}+i_{t} \tanh \left(W_{x c} x_{t}+W_{h c} h_{t_1}+b_{c}\right)",
        explanation="h_{t_1} is a typo for h_{t-1}; there is no symbol h_{t_1} in the cell.",
        _stated=False,
        stated_because="no cell has a symbol h_t_1 (h_{t_1} is not a name the spec "
                       "language can give a previous state)",
        _correct=lambda: expand(cell("lstm_peephole"), "c", keep=("f", "i")),
        corrected_lhs_latex="c_t", corrected_lhs_text="c_t"),
]

_BY_ID = {c.id: c for c in SEED_CLAIMS}
assert len(_BY_ID) == len(SEED_CLAIMS), "duplicate seed claim id"


def seed_ids() -> list[str]:
    """The ids of the seed claims, in the seed's order."""
    return [c.id for c in SEED_CLAIMS]


def seed_claim(claim_id: str) -> SeedClaim:
    """The seed claim with this id; ``KeyError`` naming the valid ids otherwise."""
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"unknown seed claim {claim_id!r}; valid ids: {', '.join(_BY_ID)}") from None
