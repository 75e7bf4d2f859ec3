"""How symbols are named in LaTeX: default rules, per-cell overrides, and notation maps.

A symbol's LaTeX is its *body* (``W_{xi}``, ``\\bar{\\imath}``, ``c``) plus a time index
that depends on its role (:mod:`derive.core.symbols`):

* parameters have no time index: ``W_xi`` -> ``W_{xi}`` (never ``W_{\\xi}``);
* the input and every equation variable carry the step: ``x`` -> ``x_t``, ``ibar`` -> ``\\bar{\\imath}_t``;
* previous states carry the step before: ``h_prev`` -> ``h_{t-1}``;
* ``Delta_h`` (gradient reaching h_t from outside the step) -> ``\\Delta h_t``;
* ``delta_z`` -> ``\\delta`` + the name of z: ``\\delta\\bar{\\imath}_t``, ``\\delta W_{xi}``;
  ``delta_h_prev``, the gradient step t passes back to h_{t-1}, -> ``\\delta^{(t)} h_{t-1}``
  (the superscript keeps it apart from the within-step ``\\delta c_{t-1}`` of step t-1).

The body comes from, in this order: the selected notation map (``greff``, ``pytorch``), the
cell's ``[latex]`` table (``cell.notation``), then the default rules of :func:`default_body`.
A notation map may also put the time index up (Greff writes ``x^{t}``, ``c^{t-1}``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from derive.core.symbols import name_inverse, prev_name
from derive.core.matrixstate import superscript_base


class NotationError(ValueError):
    """An unknown notation map name; the message lists the valid ones."""


# ---------------------------------------------------------------------------------------
# default rules
# ---------------------------------------------------------------------------------------

_DOTLESS = {"i": r"\imath", "j": r"\jmath"}


def _letters(name: str) -> str:
    """A name part as LaTeX: one letter stays, longer words are set upright-italic as a word
    (``gate`` -> ``\\mathit{gate}``), never read as Greek letters."""
    if len(name) == 1 or name.isdigit():
        return name
    return r"\mathit{%s}" % name


def default_body(name: str) -> str:
    """The LaTeX body of a symbol name by the default rules.

    ``W_xi`` -> ``W_{xi}``, ``b_i`` -> ``b_{i}``, ``ibar`` -> ``\\bar{\\imath}``,
    ``fbar`` -> ``\\bar{f}``, ``c`` -> ``c``; subscripts are copied letter for letter.
    """
    head, _, sub = name.partition("_")
    if head.endswith("bar") and len(head) > 3:
        core = head[:-3]
        head_tex = r"\bar{%s}" % (_DOTLESS.get(core) or _letters(core))
    else:
        head_tex = _letters(head)
    if not sub:
        return head_tex
    return "%s_{%s}" % (head_tex, sub.replace("_", ","))


# ---------------------------------------------------------------------------------------
# notation maps
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotationMap:
    """A renaming applied to a whole document.

    ``renames(cell)`` gives {symbol name: LaTeX body} for one cell (an empty dict when the
    map does not cover that kind of cell); ``time`` is ``"sub"`` (``x_t``) or ``"sup"``
    (``x^{t}``)."""
    name: str
    description: str
    time: str = "sub"
    rules: tuple = field(default=())   # ((regex, template, applies_to), ...)

    def renames(self, cell) -> dict:
        if cell is None:
            return {}
        out = {}
        for sym_name in _symbol_names(cell):
            for pattern, template, applies in self.rules:
                if not applies(cell):
                    continue
                m = re.fullmatch(pattern, sym_name)
                if m:
                    out[sym_name] = template(m)
                    break
        return out


def _symbol_names(cell):
    return list(cell.variables)


def _is_lstm(cell) -> bool:
    """Greff's names fit cells with a hidden state h and a cell state c."""
    return {"h", "c"} <= set(cell.states)


def _any(cell) -> bool:
    return True


#: Greff et al. (2017): input weights W_*, recurrent R_*, peepholes p_*, block input z,
#: block output y, time as a superscript (equations.md, section 4 crosswalk).
_GREFF_GATE = {"i": "i", "f": "f", "c": "z", "g": "z", "o": "o"}


def _greff_bar(m):
    g = _GREFF_GATE[m.group(1)]
    return r"\bar{%s}" % _DOTLESS.get(g, g)


GREFF = NotationMap(
    "greff",
    "Greff et al. (2017): W_* input and R_* recurrent weights, peepholes p_*, block input z, "
    "block output y, time as a superscript",
    time="sup",
    rules=(
        (r"W_x([ifco])", lambda m: "W_{%s}" % _GREFF_GATE[m.group(1)], _is_lstm),
        (r"W_h([ifco])", lambda m: "R_{%s}" % _GREFF_GATE[m.group(1)], _is_lstm),
        (r"W_c([ifo])", lambda m: "p_{%s}" % _GREFF_GATE[m.group(1)], _is_lstm),
        (r"b_([ifco])", lambda m: "b_{%s}" % _GREFF_GATE[m.group(1)], _is_lstm),
        (r"([ifgo])bar", _greff_bar, _is_lstm),
        (r"g", lambda m: "z", _is_lstm),
        (r"h", lambda m: "y", _is_lstm),
        (r"h_prev", lambda m: "y", _is_lstm),
    ),
)

#: PyTorch's documentation: W_{i*} input-hidden and W_{h*} hidden-hidden weights, the LSTM
#: candidate called g (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN).
_TORCH_GATE = {"i": "i", "f": "f", "c": "g", "g": "g", "o": "o", "r": "r", "z": "z",
               "n": "n", "h": "h"}

PYTORCH = NotationMap(
    "pytorch",
    "PyTorch documentation: W_{i*} input-hidden and W_{h*} hidden-hidden weights, "
    "the LSTM candidate g",
    rules=(
        (r"W_x([a-z])", lambda m: "W_{i%s}" % _TORCH_GATE.get(m.group(1), m.group(1)), _any),
        (r"W_h([a-z])", lambda m: "W_{h%s}" % _TORCH_GATE.get(m.group(1), m.group(1)), _any),
        (r"b_x([a-z])", lambda m: "b_{i%s}" % _TORCH_GATE.get(m.group(1), m.group(1)), _any),
        (r"b_h([a-z])", lambda m: "b_{h%s}" % _TORCH_GATE.get(m.group(1), m.group(1)), _any),
        (r"b_([ifco])", lambda m: "b_{%s}" % _TORCH_GATE[m.group(1)], _is_lstm),
    ),
)

SEED = NotationMap("seed", "the seed note's names, as in Graves (2013): W_xi, W_hi, h_t-1, "
                           "time as a subscript")

MAPS = {m.name: m for m in (SEED, GREFF, PYTORCH)}


def notation_map(name) -> NotationMap:
    """The notation map called ``name`` (``None`` means ``seed``)."""
    if name is None:
        return SEED
    if isinstance(name, NotationMap):
        return name
    try:
        return MAPS[name]
    except (KeyError, TypeError):
        raise NotationError(f"unknown notation {name!r}; valid notations: {', '.join(MAPS)}") from None


# ---------------------------------------------------------------------------------------
# naming symbols
# ---------------------------------------------------------------------------------------

T = sympy.Symbol("t", integer=True)


def index_latex(time) -> str:
    """A step index as LaTeX without spaces: ``t``, ``t-1``, ``k+1``. Printed once per index
    (SymPy's str printer dominated LaTeX export: one document prints ~9,000 indices)."""
    key = (type(time), time)                 # 1 and 1.0 are equal keys but print differently
    try:
        return _INDEX_LATEX[key]
    except KeyError:
        out = _INDEX_LATEX[key] = str(time).replace(" ", "")
        return out
    except TypeError:                        # unhashable
        return str(time).replace(" ", "")


_INDEX_LATEX: dict = {}


class Namer:
    """Symbol name -> LaTeX for one cell (or none) under one notation map."""

    def __init__(self, cell=None, notation=None):
        self.cell = cell
        self.map = notation_map(notation)
        self.overrides = dict(getattr(cell, "notation", {}) or {})
        self.overrides.update(self.map.renames(cell))

    # -- bodies --------------------------------------------------------------------------
    def body(self, name: str) -> str:
        if name in self.overrides:
            return self.overrides[name]
        return default_body(name)

    def _is_param(self, name: str) -> bool:
        if self.cell is not None:
            return name in self.cell.params or name in self.cell.readout_params
        return bool(re.match(r"[A-Z]|[bpw]_", name))

    def _states(self):
        return set(self.cell.states) if self.cell is not None else None

    # -- time index ----------------------------------------------------------------------
    def timed(self, body: str, time) -> str:
        """``body`` at step ``time`` (a SymPy expression such as t, t-1, k+1)."""
        idx = index_latex(time)
        if self.map.time == "sup":
            # x^{\mathrm{re}} at t -> {x^{\mathrm{re}}{}}^{t}
            return "%s^{%s}" % (superscript_base(body), idx)
        m = re.fullmatch(r"(.*)_\{([^{}]*)\}", body)
        if m:                                   # W_{xn} at t -> W_{xn,t}
            return "%s_{%s,%s}" % (m.group(1), m.group(2), idx)
        if len(idx) == 1:
            return "%s_%s" % (body, idx)
        return "%s_{%s}" % (body, idx)

    def prev_of(self, name: str):
        """The state of a previous-state name (``h_prev`` -> ``h``), else None."""
        try:
            return name_inverse(name, prev_name)
        except ValueError:
            return None

    def symbol(self, sym, time=T) -> str:
        """LaTeX of a cell symbol at step ``time``, by its role (:mod:`derive.core.symbols`; read
        from ``sym.role``; the relations from the symbol: ``sym.state``, ``sym.target``)."""
        name = sym.name
        role = getattr(sym, "role", None)
        if role == "incoming":
            return r"\Delta " + self.timed(self.body(sym.state), time)
        if role == "adjoint":
            return self.adjoint(sym.target, time)
        if role == "param":
            return self.body(name)
        if role == "tangent":
            return r"\mathrm{d}" + self.timed(self.body(sym.state), time - 1)
        if role == "prev_state":
            state = sym.state
            return self.timed(self.body(name if name in self.overrides else state), time - 1)
        if role in ("input", "var"):
            return self.timed(self.body(name), time)
        return self.body(name)

    def adjoint(self, target: str, time=T) -> str:
        """``\\delta`` of the quantity named ``target`` (``ibar``, ``h_prev``, ``W_xi``, ``x``)."""
        state = self.prev_of(target)
        if state is not None:
            body = self.body(target if target in self.overrides else state)
            return r"\delta^{(%s)} %s" % (index_latex(time), self.timed(body, time - 1))
        if self._is_param(target):
            return r"\delta " + self.body(target)
        return r"\delta " + self.timed(self.body(target), time)

    def param(self, name: str) -> str:
        return self.body(name)
