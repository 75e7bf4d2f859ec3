"""Batch-aware NumPy printer: one ``_print_<Class>`` per node of the expression vocabulary.

Convention (row vectors, as in PyTorch): a column-vector expression ``v`` (``n x 1``) is an
array of shape ``(..., n)``, one row per batch element (and time step, when there is one).

* ``a * b`` (Hadamard) prints ``a * b``; ``a + b`` prints ``a + b``; ``OneMatrix`` is ``1``;
* ``W v`` prints ``v @ W.T`` and ``W^T v`` prints ``v @ W`` (one row at a time: ``(W v)^T = v^T W^T``);
* ``diag(v) M`` prints ``v[..., :, None] * M`` and ``M diag(v)`` prints ``M * v[..., None, :]``;
* a transpose of a batched matrix swaps its last two axes;
* an elementwise primitive ``f(u)`` prints as a call of the function of
  :mod:`derive.codegen.np_primitives` that implements it (``sigmoid(u)``).

Every printed expression is rank-agnostic (``...`` indexing), so the same text evaluates a
whole sequence ``(T, B, n)`` or one step ``(B, n)``. Term order is the engine's.
"""
from __future__ import annotations

from sympy import MatAdd, MatrixSymbol, Rational
from sympy.printing.numpy import NumPyPrinter

from derive.core.matrixstate import Outer
from derive.core.primitives import Elementwise
from derive.core.reduction import is_batch_scalar
from derive.printing.precedence import ATOM, PRODUCT, precedence, split_sign


class BatchNumPyPrinter(NumPyPrinter):
    """Prints vector/matrix expressions as NumPy code over batched row-vector arrays."""

    printmethod = "_batchnumpycode"
    _default_settings = {**NumPyPrinter._default_settings, "fully_qualified_modules": True,
                         "order": "none", "names": None}

    def __init__(self, settings=None):
        super().__init__(settings)
        self.printmethod = "_batchnumpycode"     # NumPyPrinter sets "_numpycode" per instance

    def _name(self, sym):
        """Code for a symbol: its name, or what the ``names`` setting maps it to."""
        names = self._settings.get("names") or {}
        return names.get(sym.name, sym.name)

    # -- leaves ------------------------------------------------------------------------
    def _print_MatrixSymbol(self, expr):
        return self._name(expr)

    def _print_OneMatrix(self, expr):
        rows, cols = expr.shape
        if rows != 1 and cols != 1:       # 1 1^T in a Jacobian: the all-ones (n, m) block
            return f"numpy.ones(({rows}, {cols}), dt)"
        return "1"

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_Identity(self, expr):
        raise NotImplementedError("an identity matrix has no batched value; the kernel "
                                  "generator writes identity blocks of a Jacobian itself")

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Rational(self, expr):
        # a Python float literal is a "weak" scalar: float32 arrays stay float32
        return f"({expr.p}/{expr.q})"

    # -- operators ---------------------------------------------------------------------
    def _print_MatAdd(self, expr):
        out = []
        for i, term in enumerate(expr.args):
            negative, magnitude = self._signed(term)
            if negative:
                out.append(("-" if i == 0 else " - ") + magnitude)
            else:
                out.append(("" if i == 0 else " + ") + self._print(term))
        return "".join(out)

    def _signed(self, term):
        """(True, code of -term) for a term printed with a leading minus sign: a product
        with coefficient -1 or a negative integer, decided on the expression
        (:func:`~derive.printing.precedence.split_sign`); (False, None) otherwise. A negative
        non-integer rational stays a parenthesized factor, ``(-2/3) * u``."""
        negative, coeff, mats = split_sign(term)
        if not negative or not (coeff == -1 or getattr(coeff, "is_Integer", False)):
            return False, None
        body = self._chain(list(mats))
        if coeff == -1:
            return True, self._wrap_text(body, len(mats) > 1 or isinstance(mats[0], MatAdd))
        return True, f"{self._print(Rational(-coeff))} * {self._wrap_text(body, True)}"

    def _print_HadamardProduct(self, expr):
        outers = [a for a in expr.args if isinstance(a, Outer)]
        rest = [a for a in expr.args if not isinstance(a, Outer)]
        if len(outers) == 1 and rest and all(is_batch_scalar(a) for a in rest):
            # s vec(u w^T) = vec((s u) w^T): the scalars scale the n-vector u, not the n^2 result
            u, w = outers[0].args
            return "outer_vec(%s, %s)" % (" * ".join(self._operand(a) for a in rest + [u]),
                                          self._print(w))
        return " * ".join(self._operand(a) for a in expr.args)

    def _print_MatMul(self, expr):
        coeff, mats = expr.as_coeff_matrices()
        body = self._chain(list(mats))
        if coeff == 1:
            return body
        if coeff == -1:
            # _chain drops the parentheses around a lone sum: -(a - b) must keep them
            return "-" + self._wrap_text(body, len(mats) > 1 or isinstance(mats[0], MatAdd))
        return f"{self._print(Rational(coeff))} * {self._wrap_text(body, True)}"

    def _print_Transpose(self, expr):
        arg = expr.arg
        if isinstance(arg, MatrixSymbol) and arg.shape[1] != 1:
            name = self._name(arg)
            return f"{name}.T" if _is_param(arg) else f"{name}.swapaxes(-1, -2)"
        raise NotImplementedError(f"transpose of {arg} has no batched meaning here")

    def _print_DiagMatrix(self, expr):
        raise NotImplementedError("diag(v) prints only inside a product (diag(v) M); the "
                                  "kernel generator writes diagonal Jacobian blocks itself")

    def _print_Elementwise(self, expr):
        return f"{expr.numpy}({self._print(expr.arg)})"

    def _print(self, expr, **kwargs):
        # dispatch on the role classes first: every cell symbol prints as its name
        if isinstance(expr, MatrixSymbol):
            return self._print_MatrixSymbol(expr)
        if isinstance(expr, Elementwise):
            return self._print_Elementwise(expr)
        return super()._print(expr, **kwargs)

    # -- helpers -----------------------------------------------------------------------
    def _operand(self, e):
        """An operand of * or @ (which bind equally in Python): parenthesized when it is a
        sum, a product or a negated term (the shared precedence table)."""
        return self._wrap_text(self._print(e), precedence(e) <= PRODUCT)

    @staticmethod
    def _wrap_text(s, cond):
        return f"({s})" if cond else s

    def _chain(self, mats):
        """A product M_1 M_2 ... M_k. If the last factor is a vector v, apply the matrices to
        it from the right (row form); otherwise multiply batched matrices left to right."""
        from sympy import Transpose
        from sympy.matrices.expressions.diagonal import DiagMatrix
        last = mats[-1]
        if isinstance(last, Transpose) and last.arg.shape[1] == 1:
            # v u^T, one outer product per batch row
            # v is indexed, which binds tighter than any operator: parenthesized unless atomic
            left = self._chain(mats[:-1])
            compound = len(mats) > 2 or precedence(mats[0]) < ATOM
            return f"{self._wrap_text(left, compound)}[..., :, None] * " \
                   f"{self._operand(last.arg)}[..., None, :]"
        if mats[-1].shape[1] == 1:
            # Python's * and @ bind equally, left to right: "v @ A @ B" is ((v A) B) and
            # "d * v @ A" is ((d v) A) flat; only a diagonal after a product needs parentheses
            *ms, v = mats
            if not ms:
                return self._print(v)       # the whole product: no parentheses of its own
            acc, flat = self._operand(v), False
            for m in reversed(ms):
                if isinstance(m, DiagMatrix):
                    acc, flat = f"{self._operand(m.args[0])} * {self._wrap_text(acc, flat)}", False
                else:
                    acc, flat = f"{acc} @ {self._right_factor(m)}", True
            return acc
        acc = None          # text of the product so far (a batched matrix)
        pending = None      # a leading diag(v) waiting for the matrix it scales
        for m in mats:
            if isinstance(m, DiagMatrix):
                v = self._operand(m.args[0])
                if acc is None:
                    pending = v if pending is None else f"{pending} * {v}"
                else:
                    acc = f"{acc} * {v}[..., None, :]"
                continue
            mt = self._matrix(m)
            if acc is None:
                acc = mt if pending is None else f"({pending}[..., :, None] * {mt})"
                pending = None
            else:
                acc = f"{acc} @ {mt}"      # left to right: no nesting, whatever the length
        if acc is None:
            raise NotImplementedError("a product of diagonal matrices only")
        return acc

    def _matrix(self, m):
        from sympy import Transpose
        if isinstance(m, Transpose):
            return self._print_Transpose(m)
        return self._print(m)

    def _right_factor(self, m):
        """R such that (m v)^T = v^T R for one row vector v^T."""
        from sympy import MatMul, Transpose
        if isinstance(m, Transpose) and isinstance(m.arg, MatrixSymbol):
            return self._name(m.arg)
        if isinstance(m, MatrixSymbol):
            return f"{self._name(m)}.T"
        if isinstance(m, MatMul):
            return " @ ".join(self._right_factor(a) for a in reversed(m.args))
        raise NotImplementedError(f"cannot apply {m} to a batch of row vectors")


def _is_param(sym) -> bool:
    return getattr(sym, "role", "") == "param"


def numpy_code(expr, names=None) -> str:
    """The expression as batched NumPy code (see the module docstring); ``names`` maps symbol
    names to the code that holds them."""
    return BatchNumPyPrinter({"names": names}).doprint(expr)
