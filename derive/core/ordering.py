"""The deterministic order of atoms in the Hadamard normal form (:class:`~derive.core.algebra.VecPoly`):
a total order on expressions from their tree, never from printed text."""
from __future__ import annotations

from sympy import MatrixSymbol
from sympy.matrices.expressions import MatrixExpr

from derive.core.binary import Binary
from derive.core.primitives import Elementwise
from derive.core.symbols import Cotangent, Incoming, Param


#: Order of atoms inside a monomial: parameters, deltas, variables, activations,
#: derivatives (the order in which Greff et al. write their products, p_o * delta o_bar).
_RANK_PARAM, _RANK_ADJOINT, _RANK_VAR, _RANK_OTHER, _RANK_FUNC, _RANK_DERIV = range(6)


def atom_rank(atom) -> tuple:
    """Sort key of an atom of a Hadamard monomial (structural, cached; no printing)."""
    key = _RANK_CACHE.get(atom)
    if key is None:
        if isinstance(atom, MatrixSymbol):
            if isinstance(atom, (Cotangent, Incoming)):
                rank = _RANK_ADJOINT
            elif isinstance(atom, Param):
                rank = _RANK_PARAM
            else:
                rank = _RANK_VAR
            key = (rank, atom.name)
        elif isinstance(atom, Elementwise):
            key = (_RANK_DERIV if atom.is_derivative else _RANK_FUNC, atom.name,
                   structural_key(atom.arg))
        elif isinstance(atom, Binary):
            key = (_RANK_FUNC, atom.name, structural_key(atom))
        else:
            key = (_RANK_OTHER, structural_key(atom))
        _RANK_CACHE[atom] = key
    return key


_RANK_CACHE: dict = {}
_SKEY_CACHE: dict = {}


def structural_key(e) -> tuple:
    """A total, deterministic order on expressions from their tree (names, classes, numbers)."""
    key = _SKEY_CACHE.get(e)
    if key is None:
        if isinstance(e, MatrixSymbol):
            key = ("0", e.name)
        elif getattr(e, "is_Matrix", False) or isinstance(e, MatrixExpr):
            key = ("1", type(e).__name__, tuple(structural_key(a) for a in e.args))
        else:
            key = ("2", type(e).__name__, str(e))     # numbers and shape symbols: cheap to print
        _SKEY_CACHE[e] = key
    return key
