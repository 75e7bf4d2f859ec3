"""A recurrent cell: its step equations, defined once, and everything derived from them.

A :class:`Cell` holds one step ``s_{t-1}, x_t -> s_t`` as an ordered list of equations
``z = expr`` over the input ``x``, the previous states ``s_prev``, the parameters and the
earlier equations. States are equations whose name is a state name (``h``, ``c``).
From that definition alone it derives, with the rules of :mod:`derive.core.rules` (one local
Jacobian per node; reverse mode transposes it):

* ``jacobian(of, wrt)``: numerator-layout Jacobian ``d of / d wrt`` in compact matrix form;
* ``step_jacobian()``: every block ``d s_t / d s'_{t-1}`` of the state-transition Jacobian;
* ``backward()``: one BPTT step, the reverse-mode adjoint equations with named deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sympy import DiagMatrix, HadamardProduct, MatAdd, MatMul, MatrixSymbol

from derive.core.algebra import VecPoly
from derive.core.linmap import LinMap
from derive.core.primitives import Elementwise
from derive.core.reduction import DimSize
from derive.core.rules import jvp, pull_back, sum_cotangents
from derive.core.symbols import (DIMS, Cotangent, Incoming, Input, LossGradient, Param, PrevState,
                                 Tangent, Var, adjoint_name, incoming_name, prev_name)


class CellError(ValueError):
    """A request that does not fit the cell (an unknown name, a matrix where a vector is needed)."""


#: How a cell shows itself in Jupyter (``_repr_latex_``); the printing layer registers it.
_DISPLAY: list = []


def register_display(fn) -> None:
    """``fn(cell) -> str``: the LaTeX Jupyter shows for a cell (core imports no printer)."""
    _DISPLAY[:] = [fn]


@dataclass(frozen=True)
class ElmanForm:
    """A one-state step Jacobian ``d s_t / d s_{t-1} = diag(f'(u)) W`` (Elman's RNN)."""
    state: str
    derivative: Elementwise       # the node f'(u)
    matrix: Param                 # W, an H x H parameter

    @property
    def primitive(self) -> type:
        """The activation f."""
        return type(self.derivative).primitive

    @property
    def preactivation(self):
        """u, the argument of f'."""
        return self.derivative.arg


@dataclass(frozen=True)
class Equation:
    lhs: Var
    rhs: object          # SymPy matrix expression
    line: int = 0        # where it was defined, for messages


@dataclass
class Backward:
    """One BPTT step. ``assignments`` are evaluated in order; then ``prev_states``, ``input``
    and ``params`` give the gradients the step passes back (parameter gradients are this
    step's contribution; BPTT sums them over t)."""
    incoming: dict            # state name -> Incoming symbol (Delta s_t)
    assignments: list         # [(Cotangent, expr)] in evaluation order
    prev_states: dict         # state name -> expr of delta s_{t-1}
    input: object             # expr of delta x_t
    params: dict              # param name -> expr of this step's delta param
    adjoint_of: dict = field(default_factory=dict)   # Cotangent name -> the Var it belongs to

    def outputs(self):
        """All (symbol, expr) pairs of the step: named deltas, then what is passed back."""
        from derive.core.symbols import H
        out = list(self.assignments)
        for s, e in self.prev_states.items():
            out.append((Cotangent(adjoint_name(prev_name(s)), *e.shape), e))
        out.append((Cotangent(adjoint_name("x"), *self.input.shape), self.input))
        for p, e in self.params.items():
            out.append((Cotangent(adjoint_name(p), *e.shape), e))
        return out


class Cell:
    """One recurrent cell, defined once by its equations."""

    def __init__(self, name, *, states, params, equations, readout=(), readout_params=None,
                 title="", reference="", description="", notation=None, source=None,
                 torch=None, state_shapes=None, holdable=()):
        self.name = name
        self.title = title or name
        self.reference = reference
        self.description = description
        self.states = tuple(states)
        self.params = dict(params)                 # name -> Param (step parameters)
        self.readout_params = dict(readout_params or {})
        self.equations = tuple(equations)
        self.readout = tuple(readout)
        self.notation = dict(notation or {})       # symbol name -> LaTeX
        self.source = source                       # path of the spec it came from
        self.torch = torch                         # PyTorch module name, when it has one
        #: states the outputs do not depend on (a stabiliser): the kernels offer the backward
        #: with them held constant, :meth:`holding` (the claim is proved in verify)
        self.holdable = tuple(holdable)
        self.input = Input("x", DIMS["D"], 1)
        #: state -> its column shape: (H, 1), a scalar (1, 1), or an (H, H) matrix as its
        #: row-major vectorisation (H^2, 1)
        self.state_shapes = {s: tuple((state_shapes or {}).get(s, (DIMS["H"], 1)))
                             for s in self.states}
        self.prev = {s: PrevState.of(s, *self.state_shapes[s]) for s in self.states}
        self._defs = {eq.lhs.name: eq for eq in self.equations + self.readout}
        self._jac_cache: dict = {}
        self._expr_cache: dict = {}
        missing = [s for s in self.states if s not in self._defs]
        if missing:
            raise CellError(f"cell {name!r}: state {missing[0]!r} has no equation")

    # -- lookup ----------------------------------------------------------------------------
    def __repr__(self):
        return f"<Cell {self.name}: states {', '.join(self.states)}>"

    def _repr_latex_(self):
        return _DISPLAY[0](self) if _DISPLAY else None

    @property
    def variables(self) -> dict:
        """Every symbol of the cell by name: input, previous states, parameters, equations."""
        out = {"x": self.input}
        out.update({p.name: p for p in self.prev.values()})
        out.update(self.params)
        out.update(self.readout_params)
        out.update({eq.lhs.name: eq.lhs for eq in self.equations + self.readout})
        return out

    def symbol(self, name: str):
        """The symbol called ``name``; ``CellError`` naming it and the valid names otherwise."""
        try:
            return self.variables[name]
        except KeyError:
            raise CellError(f"cell {self.name!r} has no symbol {name!r}; it has: "
                            + ", ".join(self.variables)) from None

    def definition(self, name: str):
        return self._defs[name].rhs

    # -- forward derivatives -------------------------------------------------------------
    def _wrt_symbol(self, wrt):
        """Accept a previous state by state name (``h`` means h_{t-1}) or any vector symbol."""
        if isinstance(wrt, MatrixSymbol):
            wrt = wrt.name
        if wrt in self.prev:
            return self.prev[wrt]
        sym = self.symbol(wrt)
        if sym.shape[1] != 1:
            raise CellError(
                f"cannot take a Jacobian with respect to {wrt!r}: it is a "
                f"{sym.shape[0]}x{sym.shape[1]} matrix parameter (d/d{wrt} is a third-order "
                f"tensor); use backward() for its gradient")
        return sym

    def jacobian_linmap(self, of, wrt) -> LinMap:
        of_sym = self.symbol(of.name if isinstance(of, MatrixSymbol) else of)
        wrt_sym = self._wrt_symbol(wrt)
        if of_sym.shape[1] != 1:
            raise CellError(f"cannot take the Jacobian of {of_sym.name!r}: it is a matrix parameter")
        return self._jac(of_sym, wrt_sym)

    def state_partial(self, of, through) -> LinMap:
        """``d of_t / d through_t``: the Jacobian of state ``of`` with respect to the state
        ``through`` of the SAME step (every path from it, previous states held fixed). The
        chain rule gives ``d of_t/d s_{t-1} = (d of_t/d through_t)(d through_t/d s_{t-1}) +
        (the paths that avoid through_t)``."""
        return self._jac(self.symbol(of), self.symbol(through))

    def _jac(self, e, wrt) -> LinMap:
        key = (e, wrt)
        if key in self._jac_cache:
            return self._jac_cache[key]
        n = wrt.shape[0]

        def J(sub):
            return self._jac(sub, wrt)
        J.zero = lambda rows: LinMap.zero((rows, n))

        if e == wrt:
            out = LinMap.identity(n)
        elif isinstance(e, Var):
            out = self._jac(self._defs[e.name].rhs, wrt)
        elif isinstance(e, MatrixSymbol):
            out = LinMap.zero((e.shape[0], n))
        else:
            out = jvp(e, J)
        out = LinMap(out.terms, (e.shape[0], n)).simplified()
        self._jac_cache[key] = out
        return out

    def jacobian(self, of, wrt):
        """``d of / d wrt`` (numerator layout) as a SymPy matrix expression.

        ``of``: a state or any equation name; ``wrt``: a state name (meaning its value at
        t-1), ``"x"``, a vector parameter, or an equation name (its total effect).
        """
        key = (of.name if isinstance(of, MatrixSymbol) else of,
               wrt.name if isinstance(wrt, MatrixSymbol) else wrt)
        if key not in self._expr_cache:
            self._expr_cache[key] = self.textbook_order(
                self.named_outputs(self.jacobian_linmap(of, wrt).to_expr()))
        return self._expr_cache[key]

    @cached_property
    def _output_names(self) -> dict:
        return {VecPoly.from_expr(eq.rhs).to_expr(): eq.lhs for eq in self.equations
                if isinstance(eq.rhs, Elementwise) and eq.rhs.derive_with_output}

    def named_outputs(self, expr):
        """``expr`` with every ``f(u)`` that an equation ``y = f(u)`` names written as ``y``,
        for the primitives that derive with their output (``d exp(u) = exp(u) du``): the
        derivative of ``f' = exp(f~ + m_{t-1} - m_t)`` reads ``f'_t``, not the exponential."""
        return expr.xreplace(self._output_names) if self._output_names else expr

    def textbook_order(self, expr):
        """Reorder every sum so terms follow the parameters' declaration order (the i, f, g, o
        order of the papers); terms without parameters come first. Only the order changes."""
        rank = {name: k for k, name in enumerate(list(self.params) + list(self.readout_params))}

        def key(term):
            ps = [rank[a.name] for a in term.atoms(MatrixSymbol) if a.name in rank]
            return min(ps) if ps else -1

        def walk(e):
            if not getattr(e, "args", None) or not hasattr(e, "shape") or isinstance(e, MatrixSymbol):
                return e
            args = [walk(a) if hasattr(a, "shape") else a for a in e.args]
            if isinstance(e, MatAdd):
                args.sort(key=key)
                return MatAdd(*args, evaluate=False)
            return e.func(*args, evaluate=False) if isinstance(e, (MatMul, HadamardProduct)) \
                else e.func(*args)
        return walk(expr)

    def step_jacobian(self) -> dict:
        """{(state, prev state): d s_t / d s'_{t-1}} for every pair, in state order."""
        return {(s, r): self.jacobian(s, r) for s in self.states for r in self.states}

    # -- reverse mode --------------------------------------------------------------------
    def matrix_states(self) -> tuple:
        """The states that are H x H matrices (held as their row-major H^2-vectors)."""
        return tuple(s for s in self.states if tuple(self.state_shapes[s]) == (DIMS["H"] ** 2, 1))

    def jacobian_map(self, of, wrt):
        """``(d wrt_{t-1}, J d wrt_{t-1})``: the block ``d of_t / d wrt_{t-1}`` as a linear map
        applied to a change of ``wrt_{t-1}`` (a :class:`Tangent`), the form in which a matrix
        state's block reads as the papers write it (``dC -> f' dC``, ``dS -> dS M``)."""
        t = Tangent.of(wrt, *self.state_shapes[wrt])
        return t, self.jacobian_linmap(of, wrt).apply(VecPoly.atom(t)).to_expr()

    def jacobian_maps(self) -> dict:
        """{(of, wrt): :meth:`jacobian_map`} for every nonzero step-Jacobian block whose
        tangent is a matrix state: the blocks the documents also print as maps (derived once)."""
        return self._jacobian_maps

    @cached_property
    def _jacobian_maps(self) -> dict:
        matrix = self.matrix_states()
        return {(s, r): self.jacobian_map(s, r) for s in self.states for r in matrix
                if self.jacobian_linmap(s, r).terms}

    def holding(self, *states) -> "Cell":
        """The same cell whose :meth:`backward` treats the given states as constants
        (stop-gradient): no cotangent enters their equations or their previous values. The
        forward step and the Jacobians are unchanged. For a state the outputs do not depend
        on (sLSTM's stabiliser m) this backward gives the same gradients, more cheaply."""
        for s in states:
            if s not in self.states:
                raise CellError(f"cell {self.name!r} has no state {s!r}; its states are "
                                + ", ".join(self.states))
        held = Cell.__new__(Cell)           # shares the definition and the Jacobian caches
        held.__dict__.update({k: v for k, v in self.__dict__.items()
                              if k not in ("_backward", "_readout_backward")})
        held.held = tuple(dict.fromkeys(self.held + tuple(states)))
        return held

    held: tuple = ()

    @cached_property
    def _backward(self) -> Backward:
        incoming = {s: Incoming(incoming_name(s), *self.state_shapes[s]) for s in self.states}
        received: dict = {}                     # Var name -> [VecPoly contributions]
        prev_ct: dict = {s: VecPoly.zero(self.state_shapes[s]) for s in self.states}
        input_ct = VecPoly.zero(self.input.shape)
        param_ct: dict = {}
        assignments = []
        adjoint_of = {}

        def leaf(e, ct):
            nonlocal input_ct
            if isinstance(e, Var):
                received.setdefault(e.name, []).append(ct)
            elif isinstance(e, PrevState):
                if e.state not in self.held:
                    prev_ct[e.state] = prev_ct[e.state] + ct
            elif isinstance(e, Input):
                input_ct = input_ct + ct
            elif isinstance(e, DimSize):
                pass                                   # a dimension's size: a constant
            elif isinstance(e, Param):
                param_ct.setdefault(e.name, []).append(ct)
            else:
                raise CellError(f"cell {self.name!r}: unexpected symbol {e}")

        for eq in reversed(self.equations):
            name = eq.lhs.name
            if name in self.held:
                continue
            total = VecPoly.zero(eq.lhs.shape)
            if name in incoming:
                total = total + VecPoly.atom(incoming[name])
            for ct in received.get(name, ()):
                total = total + ct
            if total.is_zero():
                continue
            delta = Cotangent(adjoint_name(name), *eq.lhs.shape)
            adjoint_of[delta.name] = name
            assignments.append((delta, total))
            pull_back(eq.rhs, VecPoly.atom(delta), leaf)

        params = {name: sum_cotangents(param_ct[name], p.shape)
                  for name, p in self.params.items() if param_ct.get(name)}
        bw = _inline(Backward(incoming, assignments, prev_ct, input_ct, params, adjoint_of))

        def o(e):
            return self.textbook_order(self.named_outputs(e))
        return Backward(bw.incoming, [(d, o(e)) for d, e in bw.assignments],
                        {s: o(e) for s, e in bw.prev_states.items()}, o(bw.input),
                        {p: o(e) for p, e in bw.params.items()}, bw.adjoint_of)

    def backward(self) -> Backward:
        """The reverse-mode equations of one step (see :class:`Backward`)."""
        return self._backward

    # -- structure -----------------------------------------------------------------------
    def elman_form(self, state=None) -> ElmanForm | None:
        """The :class:`ElmanForm` of the block ``d state_t / d state_{t-1}`` when it is
        exactly ``diag(f'(u)) W`` with ``f'`` a derivative node and ``W`` an H x H parameter,
        else None. Without ``state`` the cell must have exactly one state."""
        if state is None:
            if len(self.states) != 1:
                return None
            state = self.states[0]
        block = self.jacobian(state, state)
        if not isinstance(block, MatMul) or len(block.args) != 2:
            return None
        d, w = block.args
        v = d.args[0] if isinstance(d, DiagMatrix) else None
        H = DIMS["H"]
        if not (isinstance(v, Elementwise) and v.is_derivative and type(v).primitive
                and isinstance(w, Param) and tuple(w.shape) == (H, H)):
            return None
        return ElmanForm(state, v, w)

    @cached_property
    def _readout_backward(self):
        states: dict = {}
        params: dict = {}

        def leaf(e, ct):
            if isinstance(e, Var):
                if e.name not in self.states:
                    raise CellError(f"cell {self.name!r}: the readout reads {e.name!r}, which is "
                                    f"not a state; its gradient cannot be a state gradient")
                states[e.name] = states.get(e.name, VecPoly.zero(e.shape)) + ct
            elif isinstance(e, Param):
                params.setdefault(e.name, []).append(ct)
            elif isinstance(e, Input):       # a feed-through such as LRU's D * u
                states["x"] = states.get("x", VecPoly.zero(e.shape)) + ct
            else:
                raise CellError(f"cell {self.name!r}: the readout reads {e.name!r}")

        for eq in self.readout:
            pull_back(eq.rhs, VecPoly.atom(LossGradient.of(eq.lhs)), leaf)
        out_params = {}
        for name, parts in params.items():
            acc = sum_cotangents(parts, self.readout_params[name].shape)
            out_params[name] = acc.to_expr() if isinstance(acc, VecPoly) else acc
        return {s: v.to_expr() for s, v in states.items()}, out_params

    def readout_backward(self):
        """The readout's transpose rule: ``({state: nabla_{s_t} L_t}, {readout param:
        gradient})``, with ``nabla_{y_t} L_t`` (:class:`LossGradient`) a leaf for every
        readout output y (key ``"x"``: the input's gradient, when the readout feeds x through);
        :class:`CellError` when the readout reads a non-state variable."""
        return self._readout_backward


def _inline(bw: Backward) -> Backward:
    """Substitute deltas that are copies of one symbol or used exactly once, so that only the
    deltas a person would name remain (those of pre-activations and of shared values)."""
    exprs = {d: v.to_expr() for d, v in bw.assignments}
    outputs = {("prev", s): v.to_expr() for s, v in bw.prev_states.items()}
    outputs[("input",)] = bw.input.to_expr()
    for p, v in bw.params.items():
        outputs[("param", p)] = v.to_expr() if isinstance(v, VecPoly) else v
    order = [d for d, _ in bw.assignments]
    changed = True
    while changed:
        changed = False
        counts: dict = {}                       # every delta's uses, one pass over the trees
        memo: dict = {}
        for e in list(exprs.values()) + list(outputs.values()):
            _count_symbols(e, counts, memo)
        for d in list(order):
            e = exprs[d]
            is_copy = isinstance(e, MatrixSymbol)
            if is_copy or counts.get(d, 0) == 1:
                sub = {d: e}
                order.remove(d)
                del exprs[d]
                for k in exprs:
                    exprs[k] = _renorm(exprs[k].xreplace(sub))
                for k in outputs:
                    outputs[k] = _renorm(outputs[k].xreplace(sub))
                changed = True
                break
    return Backward(
        incoming=bw.incoming,
        assignments=[(d, exprs[d]) for d in order],
        prev_states={s: outputs[("prev", s)] for s in bw.prev_states},
        input=outputs[("input",)],
        params={p: outputs[("param", p)] for p in bw.params},
        adjoint_of={d.name: bw.adjoint_of[d.name] for d in order},
    )


def _renorm(e):
    """``e`` in the Hadamard normal form (vectors only): memoised, a pure function of the
    tree (the same expression recurs at every substitution of :func:`_inline`)."""
    if e.shape[1] != 1:
        return e
    hit = _RENORM.get(e)
    if hit is None:
        hit = _RENORM[e] = VecPoly.from_expr(e).to_expr()
    return hit


_RENORM: dict = {}


def _count_symbols(expr, counts: dict, memo: dict) -> None:
    """Add to ``counts`` how often each matrix symbol occurs in the tree of ``expr`` (every
    occurrence, repeated subtrees counted each time they occur)."""
    for sym, n in _symbol_counts(expr, memo).items():
        counts[sym] = counts.get(sym, 0) + n


def _symbol_counts(expr, memo: dict) -> dict:
    hit = memo.get(expr)
    if hit is not None:
        return hit
    if isinstance(expr, MatrixSymbol):
        out = {expr: 1}
    else:
        out = {}
        for a in expr.args:
            if hasattr(a, "args"):
                for sym, n in _symbol_counts(a, memo).items():
                    out[sym] = out.get(sym, 0) + n
    memo[expr] = out
    return out
