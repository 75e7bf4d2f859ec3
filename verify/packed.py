"""A declarative layout: how a user's code packs a gated cell's parameters, stated as data.

    PackedLayout("lstm", gate_order="ifco", orientation="cols", packing="stacked",
                 names={"Wx": "kernel", "Wh": "recurrent_kernel", "b": "bias"})   # Keras

Each gate ``g`` of the cell (:func:`verify.gatediag.gates`) has an input matrix ``W_x g``
(H x D), a recurrent matrix ``W_h g`` (H x H) and a bias ``b_g`` (H). The layout says:

* ``gate_order``: the gates' order in the packed arrays (letters; ``g`` may stand for the
  LSTM's ``c``), default the cell's;
* ``orientation``: ``"rows"`` (``(kH, D)``, ``x @ W.T``) or ``"cols"`` (``(D, kH)``, ``x @ W``);
* ``packing``: ``"per_gate"`` (the seed's names, renamed by ``names``), ``"stacked"`` (one input
  and one recurrent matrix, keys ``names["Wx"]``, ``names["Wh"]``), ``"concat_xh"`` /
  ``"concat_hx"`` (one matrix ``names["W"]`` on ``concat[x, h]`` / ``concat[h, x]``);
* ``bias``: ``"separate"`` (``names["b"]``, (kH,)), ``"split"`` (``names["b_ih"]`` and
  ``names["b_hh"]``, whose sum is the bias; handed over as ``b/2 + 1/8`` and ``b/2 - 1/8`` so
  code that ignores one is caught), ``"split_concat"`` (one (2kH,) vector ``[b_ih, b_hh]``,
  ONNX's ``B``), ``"absent"`` (no bias: check with ``biases=False``), ``"first"`` / ``"last"``
  (a row/column of the concat matrix, multiplying a constant 1 put before / after x and h);
* ``flips``: gates whose blocks are negated (the mirror-form GRU: ``gru_cho`` with z -> 1 - z);
* ``grad_names``: the keys of the gradient dict (default ``"d" + key``; the key itself is
  accepted too).

The calling convention is the seed's (``forward(params, x, state)``, ``backward(params, x,
state, dstate) -> (grads, dx, dstate_prev)``; sequences: :mod:`verify.seqconv`).
"""
from __future__ import annotations

import numpy

from .gatediag import gates as cell_gates
from .gatediag import label
from .layouts import GradView, Layout

__all__ = ["PackedLayout", "onnx_layout", "keras_layout", "mirror_gru_layout"]

_PACKINGS = ("per_gate", "stacked", "concat_xh", "concat_hx")
_BIASES = ("separate", "split", "split_concat", "absent", "first", "last")


class PackedLayout(Layout):
    """See the module docstring."""
    seq_convention = "seed"

    def __init__(self, cell, *, gate_order=None, orientation="rows", packing="stacked",
                 bias="separate", names=None, grad_names=None, flips=(), name="packed"):
        super().__init__(cell)
        self.name = name
        table = cell_gates(self.cell)
        if packing not in _PACKINGS:
            raise ValueError(f"packing must be one of {', '.join(_PACKINGS)}, got {packing!r}")
        if bias not in _BIASES:
            raise ValueError(f"bias must be one of {', '.join(_BIASES)}, got {bias!r}")
        if orientation not in ("rows", "cols"):
            raise ValueError(f"orientation must be 'rows' or 'cols', got {orientation!r}")
        if bias in ("first", "last") and packing not in ("concat_xh", "concat_hx"):
            raise ValueError(f"bias={bias!r} needs packing='concat_xh' or 'concat_hx'")
        by_label = {label(self.cell, g): g for g in table}
        order = list(gate_order) if gate_order is not None else list(table)
        try:
            self.order = [by_label.get(g, g) for g in order]
        except TypeError:
            raise TypeError(f"gate_order must be a string or list of gate letters, got {gate_order!r}")
        if sorted(self.order) != sorted(table):
            raise ValueError(f"gate_order {''.join(order)!r} is not a permutation of the gates "
                             f"of {self.cell.name!r}: {', '.join(label(self.cell, g) for g in table)}")
        if packing != "per_gate":
            bad = [g for g in table if set(table[g]) != {"W_x", "W_h", "b_"}]
            if bad:
                raise ValueError(f"cannot pack cell {self.cell.name!r}: gate {bad[0]} has parameters "
                                 f"{', '.join(table[bad[0]].values())}, not W_x, W_h, b")
        unknown = [g for g in flips if by_label.get(g, g) not in table]
        if unknown:
            raise ValueError(f"flips name unknown gate(s) {unknown} of {self.cell.name!r}")
        self.flips = {by_label.get(g, g) for g in flips}
        self.table, self.packing, self.bias, self.orientation = table, packing, bias, orientation
        self.names = {"Wx": "Wx", "Wh": "Wh", "W": "W", "b": "b", "b_ih": "b_ih", "b_hh": "b_hh",
                      **(names or {})}
        self.grad_names = dict(grad_names or {})

    # -- helpers ---------------------------------------------------------------------------
    def _sign(self, n):
        return -1.0 if n.split("_")[-1][-1] in self.flips else 1.0

    def _gname(self, key):
        return self.grad_names.get(key, "d" + key)

    def _mat(self, blocks):
        m = numpy.concatenate(blocks, axis=0)
        return m.T if self.orientation == "cols" else m

    def _rows(self, arr):
        a = numpy.asarray(arr)
        return a.T if self.orientation == "cols" else a

    def _keys(self):
        if self.packing == "per_gate":
            return [self.names.get(n, n) for n in self.param_names]
        keys = [self.names["Wx"], self.names["Wh"]] if self.packing == "stacked" else [self.names["W"]]
        return keys + {"separate": [self.names["b"]], "split": [self.names["b_ih"], self.names["b_hh"]],
                       "split_concat": [self.names["b"]]}.get(self.bias, [])

    # -- parameters -------------------------------------------------------------------------
    def to_user(self, params):
        p = {n: self._sign(n) * numpy.asarray(params[n]) for n in self.param_names}
        if self.packing == "per_gate":
            return {self.names.get(n, n): numpy.array(v, copy=True) for n, v in p.items()}
        G = [self.table[g] for g in self.order]
        wx, wh = [p[t["W_x"]] for t in G], [p[t["W_h"]] for t in G]
        b = numpy.concatenate([p[t["b_"]] for t in G])
        out = {}
        if self.packing == "stacked":
            out[self.names["Wx"]], out[self.names["Wh"]] = self._mat(wx), self._mat(wh)
        else:
            parts = [numpy.concatenate(wx, 0), numpy.concatenate(wh, 0)]
            parts = parts if self.packing == "concat_xh" else parts[::-1]
            if self.bias in ("first", "last"):
                parts.insert(0 if self.bias == "first" else 2, b[:, None])
            m = numpy.concatenate(parts, axis=1)
            out[self.names["W"]] = m.T if self.orientation == "cols" else m
        if self.bias == "separate":
            out[self.names["b"]] = b
        elif self.bias in ("split", "split_concat"):
            ih, hh = b / 2 + 0.125, b / 2 - 0.125
            if self.bias == "split":
                out[self.names["b_ih"]], out[self.names["b_hh"]] = ih, hh
            else:
                out[self.names["b"]] = numpy.concatenate([ih, hh])
        return {k: numpy.array(v, copy=True) for k, v in out.items()}

    def _blocks(self, arrays, part=None):
        """[(seed name, label, array)] cut from the user's packed arrays (``arrays[key]``)."""
        if self.packing == "per_gate":
            out = []
            for n in self.param_names:
                k = self.names.get(n, n)
                out.append((n, k, arrays[k]))
            return out
        k = len(self.order)
        out = []
        if self.packing == "stacked":
            mx, mh = self._rows(arrays[self.names["Wx"]]), self._rows(arrays[self.names["Wh"]])
            H = mh.shape[0] // k
            D, lbl_x, lbl_h = mx.shape[1], self.names["Wx"], self.names["Wh"]
            cols_x, cols_h = slice(None), slice(None)
        else:
            m = self._rows(arrays[self.names["W"]])
            H = m.shape[0] // k
            D = m.shape[1] - H - (self.bias in ("first", "last"))
            at = 1 if self.bias == "first" else 0
            x_first = self.packing == "concat_xh"
            cols_x = slice(at, at + D) if x_first else slice(at + H, at + H + D)
            cols_h = slice(at + D, at + D + H) if x_first else slice(at, at + H)
            mx = mh = m
            lbl_x = lbl_h = self.names["W"]
            bcol = 0 if self.bias == "first" else m.shape[1] - 1
        for j, g in enumerate(self.order):
            rows = slice(j * H, (j + 1) * H)
            t = self.table[g]
            tr = ".T" if self.orientation == "cols" else ""
            out.append((t["W_x"], f"{lbl_x}{tr}[{j * H}:{(j + 1) * H}, {cols_x.start or 0}:"
                        f"{cols_x.stop if cols_x.stop is not None else D}]", mx[rows, cols_x]))
            out.append((t["W_h"], f"{lbl_h}{tr}[{j * H}:{(j + 1) * H}, {cols_h.start or 0}:"
                        f"{cols_h.stop if cols_h.stop is not None else H}]", mh[rows, cols_h]))
            if self.bias == "separate":
                out.append((t["b_"], f"{self.names['b']}[{j * H}:{(j + 1) * H}]",
                            numpy.asarray(arrays[self.names["b"]])[rows]))
            elif self.bias in ("first", "last"):
                out.append((t["b_"], f"{self.names['W']}{tr}[{j * H}:{(j + 1) * H}, {bcol}]", m[rows, bcol]))
            elif self.bias == "split":
                for key in ([part] if part else [self.names["b_ih"], self.names["b_hh"]]):
                    out.append((t["b_"], f"{key}[{j * H}:{(j + 1) * H}]", numpy.asarray(arrays[key])[rows]))
                if not part:                   # the parameter is the sum of the two
                    (n, _, a), (_, _, b) = out[-2], out[-1]
                    out[-2:] = [(n, f"{self.names['b_ih']}+{self.names['b_hh']}", a + b)]
            elif self.bias == "split_concat":
                B, key = numpy.asarray(arrays[self.names["b"]]), self.names["b"]
                lo, hi = (j * H, (j + 1) * H), ((k + j) * H, (k + j + 1) * H)
                if part is None:               # the parameter is the sum of the two halves
                    out.append((t["b_"], f"{key}[{lo[0]}:{lo[1]}]+[{hi[0]}:{hi[1]}]",
                                B[lo[0]:lo[1]] + B[hi[0]:hi[1]]))
                else:
                    a, b = lo if part == "ih" else hi
                    out.append((t["b_"], f"{key}[{a}:{b}]", B[a:b]))
        return out

    def from_user(self, user):
        got = {n: self._sign(n) * numpy.array(a, dtype=float, copy=True) for n, _, a in self._blocks(user)}
        H = next(a.shape[0] for n, a in got.items() if n.startswith("W_h"))
        return {n: got[n] if n in got else numpy.zeros(H) for n in self.param_names}

    def grad_views(self, user_grads):
        keyed = {k: user_grads[self._gname(k)] if self._gname(k) in user_grads else user_grads[k]
                 for k in self._keys()}
        if self.bias in ("split", "split_concat"):   # each half's gradient is the bias gradient
            biases = {t["b_"] for t in self.table.values()}
            one, two = ((self.names["b_ih"], self.names["b_hh"]) if self.bias == "split"
                        else ("ih", "hh"))
            blocks = self._blocks(keyed, one)
            blocks += [b for b in self._blocks(keyed, two) if b[0] in biases]
            return [GradView("d" + lbl, n, self._sign(n) * numpy.asarray(a)) for n, lbl, a in blocks]
        return [GradView("d" + lbl, n, self._sign(n) * numpy.asarray(a)) for n, lbl, a in self._blocks(keyed)]


def onnx_layout(cell="lstm"):
    """ONNX's LSTM: ``W`` (4H, D), ``R`` (4H, H), ``B`` (8H,) = [Wb, Rb], gate order i, o, f, c."""
    return PackedLayout(cell, gate_order="iofc", orientation="rows", packing="stacked",
                        bias="split_concat", names={"Wx": "W", "Wh": "R", "b": "B"}, name="onnx")


def keras_layout(cell="lstm"):
    """Keras's LSTM: ``kernel`` (D, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,), order
    i, f, c, o."""
    return PackedLayout(cell, gate_order="ifco", orientation="cols", packing="stacked",
                        names={"Wx": "kernel", "Wh": "recurrent_kernel", "b": "bias"}, name="keras")


def mirror_gru_layout(cell="gru_cho"):
    """The mirror-form GRU ``h = (1 - z) h_prev + z n``: ``gru_cho`` with z's block negated
    (sigmoid(-a) = 1 - sigmoid(a)); the seed's parameter names."""
    return PackedLayout(cell, packing="per_gate", flips=("z",), name="mirror-gru")
