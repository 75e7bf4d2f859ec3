"""Jacobians in compact matrix form: sums of chains ``diag(v) M_1 diag(v_2) M_2 ...``.

A :class:`LinMap` is the numerator-layout Jacobian of a column vector with respect to
another. Each term is a leading diagonal ``diag(v)`` (``v`` a :class:`VecPoly`) followed by
a chain of constant matrices (parameters, possibly transposed) and further diagonals.
Composition multiplies chains; :meth:`LinMap.simplified` merges adjacent diagonals
(``diag(a) diag(b) = diag(a * b)``) and adds terms with the same chain
(``diag(a) M + diag(b) M = diag(a + b) M``), which gives the textbook forms such as
``diag(sigma'(a_t)) W_hh`` and ``diag(f_t + p_f * sigma'(fbar_t) * c_{t-1} + ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass

from sympy import Identity, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from derive.core.reduction import Broadcast, DimSize, SumOf
from derive.core.algebra import VecPoly, add, apply_constant, broadcast, diag, matmul, transpose


@dataclass(frozen=True)
class Term:
    """diag(lead) @ chain[0] @ chain[1] @ ...; chain items are matrices or VecPolys (diagonals)."""
    lead: VecPoly
    chain: tuple = ()


class LinMap:
    """A sum of :class:`Term` with a fixed (rows, cols) shape."""

    def __init__(self, terms, shape):
        self.terms = tuple(terms)
        self.shape = tuple(shape)

    @classmethod
    def zero(cls, shape):
        return cls((), shape)

    @classmethod
    def identity(cls, n):
        return cls((Term(VecPoly.one((n, 1))),), (n, n))

    @classmethod
    def diagonal(cls, v: VecPoly):
        return cls((Term(v),), (v.shape[0], v.shape[0]))

    @classmethod
    def matrix(cls, m):
        """The constant matrix m (a parameter, or a product of parameters)."""
        return cls((Term(VecPoly.one((m.shape[0], 1)), (m,)),), m.shape)

    def __add__(self, other):
        return LinMap(self.terms + other.terms, self.shape)

    def scaled(self, c):
        return LinMap([Term(t.lead.scaled(c), t.chain) for t in self.terms], self.shape)

    def __matmul__(self, other: "LinMap") -> "LinMap":
        """Composition: (self @ other)(v) = self(other(v))."""
        out = []
        for a in self.terms:
            for b in other.terms:
                if not a.chain:
                    out.append(Term(a.lead * b.lead, b.chain))
                elif isinstance(a.chain[-1], VecPoly):
                    out.append(Term(a.lead, a.chain[:-1] + (a.chain[-1] * b.lead,) + b.chain))
                elif b.lead.is_one():
                    out.append(Term(a.lead, a.chain + b.chain))
                else:
                    out.append(Term(a.lead, a.chain + (b.lead,) + b.chain))
        return LinMap(out, (self.shape[0], other.shape[1])).simplified()

    def simplified(self) -> "LinMap":
        grouped: dict = {}
        order = []
        for t in map(_scalars_to_lead, self.terms):
            key = t.chain
            if key not in grouped:
                grouped[key] = t.lead
                order.append(key)
            else:
                grouped[key] = grouped[key] + t.lead
        terms = [Term(grouped[k], k) for k in order if not grouped[k].is_zero()]
        terms.sort(key=_term_key)
        return LinMap(terms, self.shape)

    def is_zero(self):
        return not self.terms

    def to_expr(self):
        """The SymPy matrix expression: a sum of products of DiagMatrix and matrices."""
        rows, cols = self.shape
        if not self.terms:
            return ZeroMatrix(rows, cols)
        parts = []
        for t in self.terms:
            factors = [] if t.lead.is_one() else [diag(t.lead.to_expr())]
            factors += [diag(c.to_expr()) if isinstance(c, VecPoly) else c for c in t.chain]
            parts.append(matmul(*factors) if factors else Identity(rows))
        return add(parts, self.shape)

    def apply(self, v: VecPoly):
        """J v as a VecPoly: each term diag(d) C_1 ... C_k applied right to left (the linear-map
        form of a block, ``dC -> f' dC``, for the documents)."""
        out = VecPoly.zero((self.shape[0], 1))
        for t in self.terms:
            acc = v
            for c in reversed(t.chain):
                if isinstance(c, VecPoly):
                    acc = c * acc
                else:
                    r = apply_constant(c, acc.to_expr())
                    acc = VecPoly.atom(r) if isinstance(r, MatMul) else VecPoly.from_expr(r)
            out = out + t.lead * acc
        return out

    def transpose_apply(self, v: VecPoly):
        """J^T v as a VecPoly: each term diag(d) C_1 ... C_k (C_j a matrix or a diagonal)
        contributes C_k^T ... C_1^T (d * v), with diag(a)^T = diag(a). Reverse mode
        (:func:`derive.core.rules.pull_back`) gets every vector cotangent this way."""
        out = VecPoly.zero((self.shape[1], 1))
        for t in self.terms:
            acc = t.lead * v
            for c in t.chain:
                if isinstance(c, VecPoly):
                    acc = c * acc
                else:
                    r = apply_constant(transpose(c), acc.to_expr())
                    acc = VecPoly.atom(r) if isinstance(r, MatMul) else VecPoly.from_expr(r)
            out = out + acc
        return out


def _is_row_ones(c):
    return isinstance(c, OneMatrix) and c.shape[0] == 1


def _contract_ones(chain):
    """Inner products of the chain that are scalars: ``1^T diag(v) 1 = SumOf(v)`` and
    ``1^T 1 = n`` (a :class:`~derive.core.reduction.DimSize`), as 1 x 1 diagonals."""
    chain, k = list(chain), 0
    while k < len(chain):
        c = chain[k]
        if _is_row_ones(c):
            n = c.shape[1]
            if k + 1 < len(chain) and isinstance(chain[k + 1], OneMatrix) and chain[k + 1].shape[1] == 1:
                chain[k:k + 2] = [VecPoly.atom(DimSize(n))]
                continue
            if (k + 2 < len(chain) and isinstance(chain[k + 1], VecPoly)
                    and isinstance(chain[k + 2], OneMatrix) and chain[k + 2].shape[1] == 1):
                chain[k:k + 3] = [VecPoly.from_expr(SumOf(chain[k + 1].to_expr()))]
                continue
        k += 1
    return tuple(chain)


def _scalars_to_lead(t: Term) -> Term:
    """A 1 x 1 diagonal in the chain is a scalar and commutes with every factor: it joins
    the leading diagonal (broadcast to its rows): ``diag(v) 1 diag(s) 1^T = diag(v s) 1 1^T``."""
    if any(isinstance(c, OneMatrix) for c in t.chain):
        t = Term(t.lead, _contract_ones(t.chain))
    lead = t.lead
    if any(isinstance(c, VecPoly) and len(c.terms) == 1 and c.terms[0][1] != 1 for c in t.chain):
        chain = []                     # diag(k v) in the chain: its number k joins the lead
        for c in t.chain:
            if isinstance(c, VecPoly) and len(c.terms) == 1 and c.terms[0][1] != 1:
                k = c.terms[0][1]
                lead, c = lead.scaled(k), c.scaled(1 / k)
            chain.append(c)
        t = Term(lead, tuple(chain))
    if any(_broadcast_scalar(c) is not None for c in t.chain):
        t = Term(t.lead, tuple(_broadcast_scalar(c) or c for c in t.chain))
    scalars = [c for c in t.chain if isinstance(c, VecPoly) and tuple(c.shape) == (1, 1)]
    if not scalars:
        return t
    for s in scalars:
        lead = lead * (s if lead.shape == s.shape else VecPoly.from_expr(broadcast(s.to_expr(), lead.shape[0])))
    return Term(lead, tuple(c for c in t.chain if not (isinstance(c, VecPoly) and tuple(c.shape) == (1, 1))))


def _broadcast_scalar(c):
    """A diagonal in the chain that is one broadcast scalar, diag(s 1) = s I, as the 1 x 1
    scalar s (it commutes with every factor); None otherwise."""
    if isinstance(c, VecPoly) and tuple(c.shape) != (1, 1) and len(c.terms) == 1:
        (m, k), = c.terms
        if len(m) == 1 and isinstance(m[0], Broadcast):
            return VecPoly.from_expr(m[0].arg).scaled(k)
    return None


def _term_key(t: Term):
    # identity-like terms first, then by the matrices of the chain in name order
    return (len(t.chain), tuple(_factor_key(c) for c in t.chain))


def _factor_key(c) -> str:
    """A factor's sort key: its name (transposed: the name and a mark), never str() of a long
    product, which SymPy prints in quadratic time."""
    if isinstance(c, VecPoly):
        return ""
    if isinstance(c, MatrixSymbol):
        return c.name
    if isinstance(c, Transpose) and isinstance(c.arg, MatrixSymbol):
        return c.arg.name + ".T"
    if isinstance(c, MatMul):
        return "*".join(_factor_key(a) for a in c.args)
    return str(c)
