"""The notation crosswalk: one row per quantity, one column per source. The seed / Graves,
Greff and PyTorch names are printed through the notation maps of
:mod:`derive.printing.notation` (never typed here); CS231n's assignment code, which no map
covers, is given as data (:data:`CS231N`). Prose in :data:`PROSE`."""
from __future__ import annotations

from derive.document.equations import Ctx
from derive.document.model import Heading, Math, Table, prose

#: (row key, symbol name, kind): kind "lstm" rows are read in the peephole LSTM (the seed,
#: Graves, Greff) and in PyTorch's LSTM; "rnn" rows in the tanh Elman RNN.
ROWS = (
    ("w_in", "W_xi", "lstm"), ("w_rec", "W_hi", "lstm"), ("w_peep", "W_ci", "lstm"),
    ("b", "b_i", "lstm"), ("i", "i", "lstm"), ("f", "f", "lstm"), ("o", "o", "lstm"),
    ("g", "g", "lstm"), ("c", "c", "lstm"), ("h_prev", "h_prev", "lstm"), ("h", "h", "lstm"),
    ("rnn_w", "W_hh", "rnn"),
)

#: The source columns: (column key, notation map, LSTM cell, Elman cell).
SOURCES = (("seed", "seed", "lstm_peephole", "rnn_tanh"),
           ("greff", "greff", "lstm_peephole", None),
           ("pytorch", "pytorch", "lstm", "rnn_tanh"))

#: CS231n assignment 3 (rnn_layers.py) works with row vectors: a = x Wx + prev_h Wh + b,
#: split into the blocks i, f, o, g of width H; a matrix of the column convention is the
#: transpose of a block of columns.
CS231N = {
    "w_in": r"\mathtt{Wx}[:, 0{:}H]^{\top}", "w_rec": r"\mathtt{Wh}[:, 0{:}H]^{\top}",
    "w_peep": None, "b": r"\mathtt{b}[0{:}H]", "i": r"\mathtt{i}", "f": r"\mathtt{f}",
    "o": r"\mathtt{o}", "g": r"\mathtt{g}", "c": r"\mathtt{next\_c}",
    "h_prev": r"\mathtt{prev\_h}", "h": r"\mathtt{next\_h}", "rnn_w": r"\mathtt{Wh}^{\top}",
}

PROSE = {
    "en": {
        "head": "Notation crosswalk",
        "1": "The sources use different names for the same quantities. The seed note uses "
             "the names of Graves; Greff et al. call the recurrent weights {R}, the peepholes "
             "{p}, the candidate the block input {z} and the output {y}, with time as a "
             "superscript; PyTorch names the weights by what they multiply; CS231n's "
             "assignment code works with row vectors, so its matrices are transposed blocks "
             "of one stacked matrix. A dash means the source has no such quantity. Rows for "
             "the input gate stand for all gates.",
        "col.what": "quantity", "col.seed": "seed note, Graves", "col.greff": "Greff et al.",
        "col.pytorch": "PyTorch", "col.cs231n": "CS231n",
        "w_in": "input weights (input gate)", "w_rec": "recurrent weights (input gate)",
        "w_peep": "peephole weights (input gate)", "b": "bias (input gate)",
        "i": "input gate", "f": "forget gate", "o": "output gate",
        "g": "candidate (block input)", "c": "cell state", "h_prev": "previous output",
        "h": "output (hidden state)", "rnn_w": "Elman recurrent matrix",
    },
    "zh": {
        "head": "符号对照表",
        "1": "各文献对同一个量用不同的名字。原笔记沿用 Graves 的记号；Greff 等人把循环权重记作 "
             "{R}、窥视孔权重记作 {p}，候选记忆称为块输入 {z}，输出记作 {y}，时间写在上标；"
             "PyTorch 按权重所乘的量命名；CS231n 的作业代码使用行向量，所以其中的矩阵是"
             "一个拼接矩阵中某些列的转置。短横表示该文献没有这个量。输入门这几行代表所有的门。",
        "col.what": "量", "col.seed": "原笔记、Graves", "col.greff": "Greff 等人",
        "col.pytorch": "PyTorch", "col.cs231n": "CS231n",
        "w_in": "输入权重（输入门）", "w_rec": "循环权重（输入门）",
        "w_peep": "窥视孔权重（输入门）", "b": "偏置（输入门）",
        "i": "输入门", "f": "遗忘门", "o": "输出门", "g": "候选记忆（块输入）",
        "c": "细胞状态", "h_prev": "上一步的输出", "h": "输出（隐藏状态）",
        "rnn_w": "Elman RNN 的循环权重矩阵",
    },
}

DASH = "\u2014"


def crosswalk_names() -> dict:
    """{row key: {column key: LaTeX or None}}: the names printed through the notation maps
    (None where the source's cell has no such symbol or its map does not cover the cell)."""
    from derive.spec.registry import cell as builtin
    out = {}
    for key, sym, kind in ROWS:
        row = {}
        for col, nm, lstm, rnn in SOURCES:
            name = lstm if kind == "lstm" else rnn
            c = builtin(name) if name else None
            if c is None or sym not in c.variables:
                row[col] = None
                continue
            ctx = Ctx.of(c, nm)
            row[col] = ctx.p(c.symbol(sym))
        row["cs231n"] = CS231N[key]
        out[key] = row
    return out


def crosswalk_blocks(notation=None, lang="en") -> list:
    """The section: a paragraph and the table (names independent of ``notation``)."""
    P = PROSE[lang]
    names = crosswalk_names()
    cols = [s[0] for s in SOURCES] + ["cs231n"]
    rows = [[P[key]] + [[Math(names[key][col])] if names[key][col] else DASH for col in cols]
            for key, _, _ in ROWS]
    g = {n: Math(names[k]["greff"]) for n, k in (("R", "w_rec"), ("p", "w_peep"),
                                                 ("z", "g"), ("y", "h"))}
    return [Heading(1, P["head"], "sec:crosswalk"), prose(P["1"], g),
            Table([P["col.what"]] + [P["col." + c] for c in cols], rows,
                  [r">{\raggedright\arraybackslash}p{3.1cm}", "l", "l", "l", "l"])]
