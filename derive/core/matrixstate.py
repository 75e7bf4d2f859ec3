"""Matrix-valued states (xLSTM's C_t, Gated DeltaNet's S_t) as their row-major vectorisation.

An H x H memory ``C`` is held as the H^2-vector ``vec(C)`` with ``vec(C)[i H + j] = C[i, j]``,
so the engine's algebra of column vectors applies unchanged: ``f' C`` is a broadcast scalar
times a vector, ``C + D`` a sum. Three bilinear nodes connect it with H-vectors:

* :class:`Outer` ``vec(u w^T) = u (x) w`` (the Kronecker product of the two columns);
* :class:`MatVec` ``C q`` (``(C q)_i = sum_j C[i, j] q_j``);
* :class:`MatTVec` ``C^T v``.

Their partial derivatives are linear maps written as six factors (:class:`Factor`), closed
under transposition, each applied to a vector as one of the three nodes::

    d Outer(u, w)  = (I (x) w) du + (u (x) I) dw          (I (x) w)^T  = I (x) w^T : G -> G w
    d MatVec(C, q) = (I (x) q^T) dC + C dq                (u (x) I)^T  = u^T (x) I : G -> G^T u
    d MatTVec(C, v) = (v^T (x) I) dC + C^T dv             C^T, C^T^T = C

so reverse mode (the transpose of the one JVP) gives the matrix forms ``delta C_{t-1} = f'
delta C_t``, ``delta k = delta C^T v``, ``delta q = C^T delta h~`` of the papers.
"""
from __future__ import annotations

import sympy
from sympy.matrices.expressions import MatrixExpr



def superscript_base(base: str) -> str:
    r"""``base`` ready for a superscript of its own: as it is, or, when it carries one
    (``k^{t}`` in the notation that writes the time index on top, ``\tilde{r}^{i}``), braced
    (TeX refuses a double superscript) and ended by an empty group (amsmath's accents look
    past the closing brace for scripts: ``{\tilde{r}^{i}}^\top`` is a double superscript,
    ``{\tilde{r}^{i}{}}^\top`` is not)."""
    return "{%s{}}" % base if "^" in base else base


def transposed_latex(base: str) -> str:
    r"""``base^\top`` (``base`` braced when it carries a superscript: :func:`superscript_base`)."""
    return superscript_base(base) + r"^\top"


def _size(e):
    n = sympy.sympify(e.shape[0])
    if not n.is_Integer:
        raise ValueError(f"{e}: size {n} unknown")
    return int(n)


class Outer(MatrixExpr):
    """``vec(u w^T)``: the outer product of two n-vectors, an n^2-vector (row-major)."""

    def __new__(cls, u, w):
        if u.shape != w.shape or u.shape[1] != 1:
            raise ValueError(f"outer: {u} and {w} must be column vectors of one shape")
        return MatrixExpr.__new__(cls, u, w)

    @property
    def shape(self):
        return (self.args[0].shape[0] ** 2, sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        u, w = self.args
        n = _size(u)
        return u._entry(int(i) // n, 0, **kwargs) * w._entry(int(i) % n, 0, **kwargs)

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer):
        return "vec(%s %sᵀ)" % tuple(printer._print(a) for a in self.args)

    def _latex(self, printer):
        u, w = (printer._print(a) for a in self.args)
        return u + r"\," + transposed_latex(w)

    _project_latex = _latex

    def _batchnumpycode(self, printer):
        u, w = (printer._print(a) for a in self.args)
        return f"outer_vec({u}, {w})"


class _MatrixTimes(MatrixExpr):
    """Base of ``C v`` and ``C^T v`` for a vectorised n x n matrix ``C`` and an n-vector ``v``."""
    transposed = False

    def __new__(cls, C, v):
        if v.shape[1] != 1 or C.shape[0] != v.shape[0] ** 2:
            raise ValueError(f"{cls.__name__}: {C} is not the vectorised square of {v}'s size")
        return MatrixExpr.__new__(cls, C, v)

    @property
    def shape(self):
        return self.args[1].shape

    def _entry(self, i, j, **kwargs):
        C, v = self.args
        n = _size(v)
        at = (lambda k: C._entry(k * n + int(i), 0, **kwargs)) if self.transposed else \
            (lambda k: C._entry(int(i) * n + k, 0, **kwargs))
        return sympy.Add(*[at(k) * v._entry(k, 0, **kwargs) for k in range(n)])

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer):
        C, v = (printer._print(a) for a in self.args)
        return f"{C}{'ᵀ' if self.transposed else ''} {v}"

    def _latex(self, printer):
        C, v = (printer._print(a) for a in self.args)
        return (transposed_latex(C) if self.transposed else C) + " " + v

    _project_latex = _latex

    def _batchnumpycode(self, printer):
        C, v = (printer._print(a) for a in self.args)
        return f"{'mat_t_vec' if self.transposed else 'mat_vec'}({C}, {v})"


class MatVec(_MatrixTimes):
    """``C v``."""


class MatTVec(_MatrixTimes):
    """``C^T v``."""
    transposed = True


# -- the factors of the partial derivatives (linear maps; each knows its transpose) ----------

class Factor(MatrixExpr):
    """A linear map in a Jacobian chain, depending on one vector (or vectorised matrix) ``a``:
    ``apply(x)`` is the map applied to ``x`` (one of the three nodes), ``T`` its transpose."""
    rows_sq = False        # True: maps n-vectors to n^2-vectors
    cols_sq = False        # True: maps n^2-vectors to n-vectors
    by_matrix = False      # True: a is a vectorised n x n matrix (the map C or C^T)

    def __new__(cls, a):
        return MatrixExpr.__new__(cls, a)

    @property
    def a(self):
        return self.args[0]

    @property
    def shape(self):
        n = sympy.sqrt(self.a.shape[0]) if self.by_matrix else self.a.shape[0]
        return (n ** 2 if self.rows_sq else n, n ** 2 if self.cols_sq else n)

    def _eval_transpose(self):
        return self.T

    def _sympystr(self, printer):
        return self.text % printer._print(self.a)

    def _latex(self, printer):
        a = printer._print(self.a)
        return self.tex % (a if "%s^\\top" not in self.tex else superscript_base(a))

    _project_latex = _latex


class KronRight(Factor):
    """``I (x) w``: u -> vec(u w^T)."""
    rows_sq, text, tex = True, "(I ⊗ %s)", r"(I \otimes %s)"

    def _entry(self, i, j, **kwargs):
        n = _size(self.a)
        return self.a._entry(int(i) % n, 0, **kwargs) if int(i) // n == int(j) else sympy.S.Zero

    def apply(self, x):
        return Outer(x, self.a)

    @property
    def T(self):
        return KronRightT(self.a)


class KronRightT(Factor):
    """``I (x) w^T``: G -> G w."""
    cols_sq, text, tex = True, "(I ⊗ %sᵀ)", r"(I \otimes %s^\top)"

    def _entry(self, i, j, **kwargs):
        n = _size(self.a)
        return self.a._entry(int(j) % n, 0, **kwargs) if int(j) // n == int(i) else sympy.S.Zero

    def apply(self, x):
        return MatVec(x, self.a)

    @property
    def T(self):
        return KronRight(self.a)


class KronLeft(Factor):
    """``u (x) I``: w -> vec(u w^T)."""
    rows_sq, text, tex = True, "(%s ⊗ I)", r"(%s \otimes I)"

    def _entry(self, i, j, **kwargs):
        n = _size(self.a)
        return self.a._entry(int(i) // n, 0, **kwargs) if int(i) % n == int(j) else sympy.S.Zero

    def apply(self, x):
        return Outer(self.a, x)

    @property
    def T(self):
        return KronLeftT(self.a)


class KronLeftT(Factor):
    """``u^T (x) I``: G -> G^T u."""
    cols_sq, text, tex = True, "(%sᵀ ⊗ I)", r"(%s^\top \otimes I)"

    def _entry(self, i, j, **kwargs):
        n = _size(self.a)
        return self.a._entry(int(j) // n, 0, **kwargs) if int(j) % n == int(i) else sympy.S.Zero

    def apply(self, x):
        return MatTVec(x, self.a)

    @property
    def T(self):
        return KronLeft(self.a)


class ByMatrix(Factor):
    """The vectorised matrix ``C`` as a map: v -> C v."""
    text, tex, by_matrix = "%s", r"%s", True

    def _entry(self, i, j, **kwargs):
        n = int(sympy.sqrt(_size(self.a)))
        return self.a._entry(int(i) * n + int(j), 0, **kwargs)

    def apply(self, x):
        return MatVec(self.a, x)

    @property
    def T(self):
        return ByMatrixT(self.a)


class ByMatrixT(Factor):
    """``C^T``: v -> C^T v."""
    text, tex, by_matrix = "%sᵀ", r"%s^\top", True

    def _entry(self, i, j, **kwargs):
        n = int(sympy.sqrt(_size(self.a)))
        return self.a._entry(int(j) * n + int(i), 0, **kwargs)

    def apply(self, x):
        return MatTVec(self.a, x)

    @property
    def T(self):
        return ByMatrix(self.a)
