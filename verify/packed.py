"""A declarative layout: how a user's code packs a gated cell's parameters, stated as data.

    PackedLayout("lstm", gate_order="ifco", orientation="cols", packing="stacked",
                 names={"Wx": "kernel", "Wh": "recurrent_kernel", "b": "bias"})   # Keras

Each gate ``g`` of the cell (:func:`verify.gatediag.gates`) has an input matrix ``W_x g``
(H x D), a recurrent matrix ``W_h g`` (H x H) and a bias ``b_g`` (H). The layout says:

* ``gate_order``: the gates' order in the packed arrays (letters; ``g`` may stand for the
  LSTM's ``c``), default the cell's;
* ``orientation``: ``"rows"`` (``(kH, D)``, ``x @ W.T`` or ``W @ x``) or ``"cols"``
  (``(D, kH)``, ``x @ W``);
* ``packing``: ``"per_gate"`` (the seed's names, renamed by ``names``), ``"stacked"`` (one input
  and one recurrent matrix, keys ``names["Wx"]``, ``names["Wh"]``), ``"concat_xh"`` /
  ``"concat_hx"`` (one matrix ``names["W"]`` on ``concat[x, h]`` / ``concat[h, x]``),
  ``"per_gate_concat_xh"`` / ``"per_gate_concat_hx"`` (one ``(H, D+H)`` matrix per gate, keys
  ``W_<gate>`` and bias ``b_<gate>``, renamed by ``names``), or a dict ``{user key: [seed
  names]}``: the key's array is those parameters stacked along the rows (any cell, gates of
  different shapes too: peepholes, ``b_xn``/``b_hn``); a name under two keys is their sum,
  handed over as ``p/2 + 1/8`` and ``p/2 - 1/8`` so code that ignores one is caught;
* ``bias``: ``"separate"`` (``names["b"]``, (kH,)), ``"split"`` (``names["b_ih"]`` and
  ``names["b_hh"]``, whose sum is the bias, handed over as above), ``"split_concat"`` (one
  (2kH,) vector ``[b_ih, b_hh]``, ONNX's ``B``), ``"absent"`` (no bias: check with
  ``biases=False``), ``"first"`` / ``"last"`` (a row/column of the concat matrix, multiplying a
  constant 1 put before / after x and h);
* ``flips``: gates whose blocks are negated (the mirror-form GRU: ``gru_cho`` with z -> 1 - z);
* ``grad_names``: the keys of the gradient dict (default ``"d" + key``; the key itself too);
* ``vectors``: ``"rows"`` (``x`` (B, D)) or ``"columns"`` (``x`` (D, B), biases (n, 1));
  ``batch_axis=False``: one sample as 1-D vectors (``x`` (D,), the check draws B = 1);
* ``convention``: how the functions are called, ``"seed"``, ``"torch"`` or ``"cs231n"``
  (:mod:`verify.layout_base`; sequences: :mod:`verify.seqconv`).
"""
from __future__ import annotations

import numpy

from .gatediag import gates as cell_gates
from .gatediag import label
from .layout_base import STEP_CONVENTIONS, GradView, Layout
from .strategies import param_shapes

__all__ = ["PackedLayout", "onnx_layout", "keras_layout", "mirror_gru_layout"]

_PACKINGS = ("per_gate", "stacked", "concat_xh", "concat_hx", "per_gate_concat_xh",
             "per_gate_concat_hx")
_BIASES = ("separate", "split", "split_concat", "absent", "first", "last")
_HALF = {0: 0.125, 1: -0.125}           # the two summed halves: p/2 + 1/8, p/2 - 1/8


class PackedLayout(Layout):
    """See the module docstring."""

    def __init__(self, cell, *, gate_order=None, orientation="rows", packing="stacked",
                 bias="separate", names=None, grad_names=None, flips=(), vectors="rows",
                 batch_axis=True, convention="seed", name="packed"):
        super().__init__(cell)
        self.name = name
        table = cell_gates(self.cell)
        if convention not in STEP_CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(STEP_CONVENTIONS)}, "
                             f"got {convention!r}")
        if not isinstance(packing, dict) and packing not in _PACKINGS:
            raise ValueError(f"packing must be one of {', '.join(_PACKINGS)} or a dict, got {packing!r}")
        if bias not in _BIASES:
            raise ValueError(f"bias must be one of {', '.join(_BIASES)}, got {bias!r}")
        if orientation not in ("rows", "cols"):
            raise ValueError(f"orientation must be 'rows' or 'cols', got {orientation!r}")
        if vectors not in ("rows", "columns"):
            raise ValueError(f"vectors must be 'rows' or 'columns', got {vectors!r}")
        concat = isinstance(packing, str) and "concat" in packing
        if bias in ("first", "last") and not concat:
            raise ValueError(f"bias={bias!r} needs packing='concat_xh' or 'concat_hx'")
        if packing == "per_gate" and bias not in ("separate", "absent"):
            raise ValueError(f"bias={bias!r} needs a packed layout: packing='per_gate' keeps the "
                             "cell's own bias names (rename them with names=)")
        by_label = {label(self.cell, g): g for g in table}
        order = list(gate_order) if gate_order is not None else list(table)
        try:
            self.order = [by_label.get(g, g) for g in order]
        except TypeError:
            raise TypeError(f"gate_order must be a string or list of gate letters, got {gate_order!r}")
        if sorted(self.order) != sorted(table):
            raise ValueError(f"gate_order {''.join(order)!r} is not a permutation of the gates "
                             f"of {self.cell.name!r}: {', '.join(label(self.cell, g) for g in table)}")
        if isinstance(packing, dict):
            self._check_table(packing)
            self.order = [g for g in _gates_in(packing)]
        elif packing != "per_gate":
            bad = [g for g in table if set(table[g]) != {"W_x", "W_h", "b_"}]
            if bad:
                raise ValueError(f"cannot pack cell {self.cell.name!r}: gate {bad[0]} has parameters "
                                 f"{', '.join(table[bad[0]].values())}, not W_x, W_h, b; "
                                 f"use packing={{key: [names]}}")
        unknown = [g for g in flips if by_label.get(g, g) not in table]
        if unknown:
            raise ValueError(f"flips name unknown gate(s) {unknown} of {self.cell.name!r}")
        self.flips = {by_label.get(g, g) for g in flips}
        self.table, self.packing, self.bias, self.orientation = table, packing, bias, orientation
        self.vectors, self.batch_axis = vectors, bool(batch_axis)
        self.convention = self.seq_convention = convention
        self.names = {"Wx": "Wx", "Wh": "Wh", "W": "W", "b": "b", "b_ih": "b_ih", "b_hh": "b_hh",
                      **(names or {})}
        self.grad_names = dict(grad_names or {})

    def _check_table(self, packing):
        shapes = param_shapes(self.cell)
        listed = [n for ns in packing.values() for n in ns]
        unknown = sorted(set(listed) - set(shapes))
        if unknown:
            raise ValueError(f"packing names unknown parameter(s) {', '.join(unknown)} of "
                             f"{self.cell.name!r}: {', '.join(shapes)}")
        missing = [n for n in shapes if n not in listed]
        if missing:
            raise ValueError(f"packing leaves out parameter(s) {', '.join(missing)} of {self.cell.name!r}")
        for key, ns in packing.items():
            tails = {tuple(shapes[n][1:]) for n in ns}
            if len(tails) > 1:
                raise ValueError(f"packing key {key!r} stacks parameters of different widths: "
                                 + ", ".join(f"{n} {' x '.join(shapes[n])}" for n in ns))
        twice = [n for n in shapes if listed.count(n) > 2]
        if twice:
            raise ValueError(f"parameter {twice[0]} is listed under more than two packing keys")

    # -- helpers ---------------------------------------------------------------------------
    def _sign(self, n):
        return -1.0 if n.split("_")[-1][-1] in self.flips else 1.0

    def _gname(self, key):
        return self.grad_names.get(key, "d" + key)

    def _orient(self, a):
        a = numpy.asarray(a)
        return a.T if self.orientation == "cols" and a.ndim == 2 else a

    def _gkey(self, kind, g):
        lbl = f"{kind}_{label(self.cell, g)}"
        return self.names.get(lbl, lbl)

    def _split_keys(self, gs):
        """The two bias keys (ih, hh) of a group: ``b_ih_<gate>``, ``b_hh_<gate>`` per gate."""
        if self.packing.startswith("per_gate_"):
            return self._gkey("b_ih", gs[0]), self._gkey("b_hh", gs[0])
        return self.names["b_ih"], self.names["b_hh"]

    def _groups(self):
        """[(matrix key, bias key, gates)] of the concat/stacked packings."""
        if self.packing.startswith("per_gate_"):
            return [(self._gkey("W", g), self._gkey("b", g), [g]) for g in self.order]
        return [(self.names["W"], self.names["b"], list(self.order))]

    def _keys(self):
        if isinstance(self.packing, dict):
            return list(self.packing)
        if self.packing == "per_gate":
            return [self.names.get(n, n) for n in self._present()]
        if self.packing.startswith("per_gate_"):
            return [k for w, b, gs in self._groups() for k in [w] + {
                "separate": [b], "split_concat": [b], "split": list(self._split_keys(gs))}.get(self.bias, [])]
        keys = [self.names["Wx"], self.names["Wh"]] if self.packing == "stacked" else [self.names["W"]]
        return keys + {"separate": [self.names["b"]], "split": [self.names["b_ih"], self.names["b_hh"]],
                       "split_concat": [self.names["b"]]}.get(self.bias, [])

    def _col(self, v):
        """Biases of column-vector code are (n, 1)."""
        v = numpy.asarray(v)
        return v[:, None] if v.ndim == 1 and self.vectors == "columns" and self.batch_axis else v

    def _flat(self, arrays):
        """The user's arrays with (n, 1) biases read as (n,)."""
        return {k: (numpy.asarray(v)[:, 0] if self.vectors == "columns" and numpy.ndim(v) == 2
                    and numpy.shape(v)[1] == 1 and k in self._bias_keys() else v)
                for k, v in arrays.items()}

    def _bias_keys(self):
        shapes = param_shapes(self.cell)
        if isinstance(self.packing, dict):
            return {k for k, ns in self.packing.items() if all(len(shapes[n]) == 1 for n in ns)}
        if self.packing == "per_gate":
            return {self.names.get(n, n) for n in self.param_names if len(shapes[n]) == 1}
        groups = self._groups() if "concat" in self.packing else []
        return {self.names["b"], self.names["b_ih"], self.names["b_hh"]} | {
            b for _, b, _ in groups} | {k for _, _, gs in groups for k in self._split_keys(gs)}

    def _present(self):
        """The cell's parameters a ``per_gate`` layout hands over (no biases when absent)."""
        shapes = param_shapes(self.cell)
        return [n for n in self.param_names if not (self.bias == "absent" and len(shapes[n]) == 1)]

    # -- parameters -------------------------------------------------------------------------
    def to_user(self, params):
        """Seed-named parameters -> the user's arrays (their shapes are kept: a gradient the
        user's code does not return is cut from a NaN array of its shape, and named missing)."""
        out = self._to_user(params)
        self._shapes = {k: numpy.shape(v) for k, v in out.items()}
        return out

    def _to_user(self, params):
        p = {n: self._sign(n) * numpy.asarray(params[n]) for n in self.param_names}
        if isinstance(self.packing, dict):
            out = {}
            for key, ns in self.packing.items():
                blocks = []
                for n in ns:
                    keys = [k for k, v in self.packing.items() if n in v]
                    blocks.append(p[n] / 2 + _HALF[keys.index(key)] if len(keys) == 2 else p[n])
                out[key] = self._orient(numpy.concatenate(blocks, axis=0))
            return {k: numpy.array(self._col(v), copy=True) for k, v in out.items()}
        if self.packing == "per_gate":
            return {self.names.get(n, n): numpy.array(self._col(p[n]), copy=True) for n in self._present()}
        out = {}
        if self.packing == "stacked":
            G = [self.table[g] for g in self.order]
            out[self.names["Wx"]] = self._orient(numpy.concatenate([p[t["W_x"]] for t in G], 0))
            out[self.names["Wh"]] = self._orient(numpy.concatenate([p[t["W_h"]] for t in G], 0))
            groups = [(None, self.names["b"], self.order)]
        else:
            groups = self._groups()
        for wkey, bkey, gs in groups:
            G = [self.table[g] for g in gs]
            b = numpy.concatenate([p[t["b_"]] for t in G])
            if wkey is not None:
                parts = [numpy.concatenate([p[t["W_x"]] for t in G], 0),
                         numpy.concatenate([p[t["W_h"]] for t in G], 0)]
                parts = parts if self.packing.endswith("concat_xh") else parts[::-1]
                if self.bias in ("first", "last"):
                    parts.insert(0 if self.bias == "first" else 2, b[:, None])
                out[wkey] = self._orient(numpy.concatenate(parts, axis=1))
            if self.bias == "separate":
                out[bkey] = b
            elif self.bias in ("split", "split_concat"):
                ih, hh = b / 2 + _HALF[0], b / 2 + _HALF[1]
                if self.bias == "split":
                    kih, khh = self._split_keys(gs)
                    out[kih], out[khh] = ih, hh
                else:
                    out[bkey] = numpy.concatenate([ih, hh])
        return {k: numpy.array(self._col(v), copy=True) for k, v in out.items()}

    def _table_blocks(self, arrays, each, nm):
        out, tr = [], ".T" if self.orientation == "cols" else ""
        shapes = param_shapes(self.cell)
        for key, ns in self.packing.items():
            a = self._orient(arrays[key])
            H = a.shape[0] // len(ns) if len(ns) else 0
            for j, n in enumerate(ns):
                lo, hi = j * H, (j + 1) * H
                lbl = (f"{nm(key)}[:, {lo}:{hi}]{tr}" if tr and len(shapes[n]) == 2 else f"{nm(key)}[{lo}:{hi}]")
                out.append((n, lbl, a[lo:hi]))
        if each:
            return out
        got = {}
        for n, lbl, a in out:                  # a parameter listed twice is the sum of its blocks
            got[n] = (n, got[n][1] + "+" + lbl, got[n][2] + a) if n in got else (n, lbl, a)
        return list(got.values())

    def _blocks(self, arrays, part=None, shown=None):
        """[(seed name, label, array)] cut from the user's packed arrays (``arrays[key]``);
        ``shown``: the name a label gives each key (the user's gradient keys)."""
        arrays = self._flat(arrays)

        def nm(key):
            return (shown or {}).get(key, key)
        if isinstance(self.packing, dict):
            return self._table_blocks(arrays, part is not None, nm)
        if self.packing == "per_gate":
            return [(n, nm(self.names.get(n, n)), arrays[self.names.get(n, n)]) for n in self._present()]
        k, out = len(self.order), []
        tr = ".T" if self.orientation == "cols" else ""
        if self.packing == "stacked":
            mx, mh = self._orient(arrays[self.names["Wx"]]), self._orient(arrays[self.names["Wh"]])
            H = mh.shape[0] // k
            D = mx.shape[1]
            groups = [(nm(self.names["Wx"]), nm(self.names["Wh"]), mx, mh, slice(0, D), slice(0, H),
                       None, self.names["b"], self.order)]
        else:
            groups = []
            for wkey, bkey, gs in self._groups():
                m = self._orient(arrays[wkey])
                H = m.shape[0] // len(gs)
                D = m.shape[1] - H - (self.bias in ("first", "last"))
                at = 1 if self.bias == "first" else 0
                x_first = self.packing.endswith("concat_xh")
                cx = slice(at, at + D) if x_first else slice(at + H, at + H + D)
                ch = slice(at + D, at + D + H) if x_first else slice(at, at + H)
                groups.append((nm(wkey), nm(wkey), m, m, cx, ch, 0 if self.bias == "first" else m.shape[1] - 1,
                               bkey, gs))
        for lx, lh, mx, mh, cx, ch, bcol, bkey, gs in groups:
            kk = len(gs)
            for j, g in enumerate(gs):
                rows, t = slice(j * H, (j + 1) * H), self.table[g]
                rr = f"{j * H}:{(j + 1) * H}"
                out.append((t["W_x"], f"{lx}{tr}[{rr}, {cx.start}:{cx.stop}]", mx[rows, cx]))
                out.append((t["W_h"], f"{lh}{tr}[{rr}, {ch.start}:{ch.stop}]", mh[rows, ch]))
                if self.bias == "separate":
                    out.append((t["b_"], f"{nm(bkey)}[{rr}]", numpy.asarray(arrays[bkey])[rows]))
                elif self.bias in ("first", "last"):
                    out.append((t["b_"], f"{lx}{tr}[{rr}, {bcol}]", mx[rows, bcol]))
                elif self.bias == "split":
                    kih, khh = self._split_keys(gs)
                    for key in ({"ih": [kih], "hh": [khh]}[part] if part else [kih, khh]):
                        out.append((t["b_"], f"{nm(key)}[{rr}]", numpy.asarray(arrays[key])[rows]))
                    if not part:                   # the parameter is the sum of the two
                        (n, _, a), (_, _, b) = out[-2], out[-1]
                        out[-2:] = [(n, f"{nm(kih)}+{nm(khh)}", a + b)]
                elif self.bias == "split_concat":
                    B = numpy.asarray(arrays[bkey])
                    lo, hi = (j * H, (j + 1) * H), ((kk + j) * H, (kk + j + 1) * H)
                    if part is None:               # the parameter is the sum of the two halves
                        out.append((t["b_"], f"{nm(bkey)}[{lo[0]}:{lo[1]}]+[{hi[0]}:{hi[1]}]",
                                    B[lo[0]:lo[1]] + B[hi[0]:hi[1]]))
                    else:
                        a, b = lo if part == "ih" else hi
                        out.append((t["b_"], f"{nm(bkey)}[{a}:{b}]", B[a:b]))
        return out

    def from_user(self, user):
        got = {n: self._sign(n) * numpy.array(a, dtype=float, copy=True) for n, _, a in self._blocks(user)}
        H = next((a.shape[0] for n, a in got.items() if n.startswith("W_h")), None)
        return {n: got[n] if n in got else numpy.zeros(H if H is not None else 0) for n in self.param_names}

    def grad_views(self, user_grads):
        """The user's gradient blocks, each labelled with the key the user's dict has
        (``grad_names[key]``, ``"d" + key`` or the key itself)."""
        keyed, shown, missing = {}, {}, []
        for k in self._keys():
            used = next((g for g in (self._gname(k), k) if g in user_grads), None)
            if used is None and k not in getattr(self, "_shapes", {}):
                raise ValueError(f"no gradient for {k!r}: looked for key {self._gname(k)!r} or "
                                 f"{k!r}, got keys {', '.join(map(repr, user_grads)) or 'none'}")
            if used is None:                          # named missing (fine when skipped)
                keyed[k], shown[k] = numpy.full(self._shapes[k], numpy.nan), self._gname(k)
                missing.append(self._gname(k))
            else:
                keyed[k], shown[k] = user_grads[used], used
        if isinstance(self.packing, dict):           # each block of a summed pair is its gradient
            blocks = self._blocks(keyed, "each", shown)
        elif self.bias in ("split", "split_concat"):  # each half's gradient is the bias gradient
            biases = {t["b_"] for t in self.table.values()}
            blocks = self._blocks(keyed, "ih", shown)
            blocks += [b for b in self._blocks(keyed, "hh", shown) if b[0] in biases]
        else:
            blocks = self._blocks(keyed, None, shown)
        def gone(lbl):
            return any(lbl == m or lbl.startswith((m + "[", m + ".T", m + "+")) for m in missing)
        return [GradView(lbl, n, None if gone(lbl) else self._sign(n) * numpy.asarray(a))
                for n, lbl, a in blocks]

    # -- vectors and calls ------------------------------------------------------------------
    def vec_in(self, a):
        if a is None:
            return None
        a = numpy.asarray(a)
        if not self.batch_axis:
            return a[..., 0, :]
        return numpy.swapaxes(a, -1, -2) if self.vectors == "columns" else a

    def vec_out(self, a):
        if a is None or not hasattr(a, "ndim"):
            return a
        if not self.batch_axis:
            return a[..., None, :]
        return numpy.swapaxes(a, -1, -2) if self.vectors == "columns" and a.ndim >= 2 else a

    def user_args(self, user_params):
        return STEP_CONVENTIONS[self.convention][0](self, user_params)

    def call_forward(self, fn, user_params, x, state):
        st, ctx = STEP_CONVENTIONS[self.convention][1](
            self, fn, user_params, self.vec_in(x), tuple(self.vec_in(s) for s in state))
        return tuple(self.vec_out(s) for s in st), ctx

    def call_backward(self, fn, ctx, user_params, x, state, dstate):
        g, dx, dprev = STEP_CONVENTIONS[self.convention][2](
            self, fn, ctx, user_params, self.vec_in(x), tuple(self.vec_in(s) for s in state),
            tuple(self.vec_in(s) for s in dstate))
        return g, self.vec_out(dx), tuple(self.vec_out(s) for s in dprev)


def _gates_in(packing):
    seen = []
    for ns in packing.values():
        for n in ns:
            g = n.split("_")[-1][-1]
            if g not in seen:
                seen.append(g)
    return seen


def onnx_layout(cell="lstm"):
    """ONNX's LSTM: ``W`` (4H, D), ``R`` (4H, H), ``B`` (8H,) = [Wb, Rb], gate order i, o, f, c."""
    return PackedLayout(cell, gate_order="iofc", orientation="rows", packing="stacked",
                        bias="split_concat", names={"Wx": "W", "Wh": "R", "b": "B"}, name="onnx")


def keras_layout(cell="lstm"):
    """Keras's LSTM: ``kernel`` (D, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,), order
    i, f, c, o."""
    return PackedLayout(cell, gate_order="ifco", orientation="cols", packing="stacked",
                        names={"Wx": "kernel", "Wh": "recurrent_kernel", "b": "bias"}, name="keras")


def mirror_gru_layout(cell="gru_cho", **options):
    """The mirror-form GRU ``h = (1 - z) h_prev + z n``: ``gru_cho`` with z's block negated
    (sigmoid(-a) = 1 - sigmoid(a)); the seed's parameter names unless ``options`` (any
    :class:`PackedLayout` keyword: ``gate_order``, ``packing``, ``names``, ...) say otherwise."""
    options = {"packing": "per_gate", "name": "mirror-gru", **options}
    flips = tuple(options.pop("flips", ())) + ("z",)
    return PackedLayout(cell, flips=flips, **options)
