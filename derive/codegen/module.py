"""Kernel source for a cell: math functions through ``sympy.lambdify`` plus the loop driver.

The kernel of a cell has two parts:

* **math functions** (``_fwd0``, ``_bwd0``, ``_jac``, ...): straight-line elementwise code of one
  stage of a step, built by ``sympy.lambdify`` from the plan's derived expressions with
  :class:`~derive.printing.numpy_code.BatchNumPyPrinter` and a hash-consing CSE (every repeated
  subtree is computed once);
* **the driver**: loops, buffers and the grouped matrix products the plan
  (:mod:`derive.codegen.plan`) lays out. It holds structure only: which stacked product to
  run, which slice to pass where, what to store for the backward pass. Every formula it
  contains is printed from a derived expression.

:func:`generate` returns both; :mod:`derive.codegen.runtime` runs them in memory and
:mod:`derive.export.kernels` writes them, with the primitives and support code, as one
NumPy-only module. Both routes execute the same code, so they give identical results.
"""
from __future__ import annotations

from dataclasses import dataclass

from derive.codegen import api_template, api_torch
from derive.codegen import np_primitives as numpy_primitives
from derive.codegen import scan_support
from derive.codegen import support as kernel_support
from derive.codegen.driver import Driver, Lines as _Lines
from derive.codegen.ir import FrozenMap
from derive.codegen.mathfn import PRIMITIVE_NAMES
from derive.codegen.plan import Plan, build_plan
from derive.codegen.copied import module_body
from derive.codegen.pysource import check_cell_names
from derive.codegen.scan import generate_scan
from derive.core.symbols import H

GENERATOR_VERSION = 5
#: The modules copied verbatim into every generated module after the primitives, in order.
SUPPORT_MODULES = (kernel_support, scan_support)
SUPPORT_NAMES = [(m, n) for m in SUPPORT_MODULES for n, v in vars(m).items()
                 if callable(v) and getattr(v, "__module__", "") == m.__name__]


def api_source(cell) -> str:
    """The generated module's public API: api_template.py verbatim, and api_torch.py for a
    cell with a [torch] table (its one ``{module}`` mark replaced by the torch module name)."""
    api = module_body(api_template).rstrip("\n")
    if cell.torch:
        api += "\n\n\n" + module_body(api_torch).rstrip("\n").replace(
            "{module}", cell.torch.get("module", ""))
    return api


@dataclass(frozen=True)
class Kernel:
    """A cell's generated kernels: the plan, the math functions in order, the source parts."""
    cell: object
    plan: Plan
    math: FrozenMap       # name -> MathFunction
    constants: str        # CELL, STATE, OUTPUT, PARAMS, TORCH, _KEPT
    driver: str           # _forward, _backward, _jacobian, _jvp
    api: str              # the public API (api_template.py, api_torch.py, verbatim)

    @property
    def program(self) -> str:
        """Constants, driver and API as one source text (what runs in memory)."""
        return f"{self.constants}\n\n\n{self.driver}\n{self.api}\n"

    def namespace(self):
        """Everything the driver refers to, for running it in memory."""
        import numpy
        ns = {"numpy": numpy}
        ns.update({n: getattr(numpy_primitives, n) for n in PRIMITIVE_NAMES})
        ns.update({n: getattr(m, n) for m, n in SUPPORT_NAMES})
        ns.update({name: m.function for name, m in self.math.items()})
        return ns


def generate(cell) -> Kernel:
    """The kernels of ``cell`` (cached per cell object: the exporter, the run-time route and the
    gradient-flow experiment share one generation)."""
    hit = _GENERATED.get(id(cell))
    if hit is not None and hit[0] is cell:
        return hit[1]
    kernel = _generate(cell)
    _GENERATED[id(cell)] = (cell, kernel)
    return kernel


_GENERATED: dict = {}


def _generate(cell) -> Kernel:
    check_cell_names(cell)          # names become identifiers of the generated code
    plan = build_plan(cell)
    d = Driver(plan)
    consts, L = _Lines(), _Lines()
    scan_math, scan_driver, refusal = generate_scan(cell, plan.output_state)
    constants(consts, cell, plan.output_state, d.kept_dims(), refusal)
    d.forward(L)
    d.backward(L)
    held_math = _held_backward(cell, plan, L)
    d.jacobian(L)
    d.jvp(L)
    math = {**d.math, **held_math, **scan_math}
    driver = "\n".join(L.lines) + ("\n" + scan_driver if scan_driver else "")
    return Kernel(cell, plan, FrozenMap(tuple(sorted(math.items(),
                                                     key=lambda kv: _math_order(kv[0])))),
                  "\n".join(consts.lines), driver, api_source(cell))


def _held_backward(cell, plan, L) -> dict:
    """``_held_backward``: the backward of ``cell.holding(*cell.holdable)`` (no gradient through
    the holdable states; the outputs do not depend on them), reading the full forward's cache;
    its math functions ({} for a cell with nothing to hold)."""
    if not cell.holdable:
        return {}
    held = build_plan(cell.holding(*cell.holdable))
    missing = sorted({v.name for v in held.stored} - {v.name for v in plan.stored})
    if missing:                                              # pragma: no cover
        raise ValueError(f"cell {cell.name!r}: the backward holding {', '.join(cell.holdable)} "
                         f"reads values the forward does not keep ({', '.join(missing)})")
    d = Driver(held, prefix="held_")
    d.backward(L)
    return d.math


def _math_order(name):
    kind = {"_pre": 0, "_fwd": 1, "_bwd": 2, "_bwdx": 3, "_held_bwd": 4, "_held_bwdx": 4.5,
            "_jac": 5, "_seq": 6, "_sgrad": 7}
    head = name.rstrip("0123456789")
    return (kind.get(head, 9), int(name[len(head):] or 0))


def state_shapes(cell) -> dict:
    """state -> its shape in a batch row: ("H",), ("1",) (a scalar) or ("H", "H") (a matrix)."""
    named = {(H, 1): ("H",), (1, 1): ("1",), (H * H, 1): ("H", "H")}
    return {s: named[tuple(cell.state_shapes[s])] for s in cell.states}


def constants(L, cell, output_state, kept, scan_refusal=""):
    """The cell's constants (names and shapes; every value printed by repr); SCAN_REFUSAL is
    why forward(method="scan") refuses the cell ("" for a cell affine in its state)."""
    params = {n: tuple(str(d) for d in p.shape[:1]) + ((str(p.shape[1]),) if p.shape[1] != 1 else ())
              for n, p in cell.params.items()}
    torch = None
    if cell.torch:
        torch = {k: (list(v) if isinstance(v, list) else v) for k, v in cell.torch.items()}
    L(f"CELL = {cell.name!r}")
    L(f"STATE = {tuple(cell.states)!r}")
    L(f"STATE_SHAPES = {state_shapes(cell)!r}")
    L(f"OUTPUT = {output_state!r}")
    L(f"SCAN_REFUSAL = {scan_refusal!r}")
    L(f"HOLDABLE = {tuple(getattr(cell, 'holdable', ()))!r}")
    L("PARAMS = {")
    for n, shape in params.items():
        L(f"    {n!r}: {shape!r},")
    L("}")
    if torch is None:
        L("TORCH = None")
    else:
        L("TORCH = {")
        for k, v in torch.items():
            L(f"    {k!r}: {v!r},")
        L("}")
    L(f"_KEPT = {kept!r}")
