"""Line-break hints as a value (issue 13, item 3): the printer gives a long right side as a
:class:`Breakable` (pieces of text, each after an allowed break tagged with the depth of its
sum) and the ``align`` layout consumes it directly. No control characters travel inside
printed strings and nothing is parsed back out of printed text."""
import re

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

import derive
from derive.core.algebra import add, diag, hadamard, matmul, scale
from derive.core.symbols import Param, Var
from derive.printing import latex as L
from derive.printing.latex import Breakable, Eq, Piece, align_env, expr_latex, layout_rhs, printer

H = sympy.Symbol("H")
NAMES = ("rnn_sigmoid", "lstm_peephole", "lstm_fgr", "gru", "gru_cho")


def _derived(name):
    """(cell, every derived expression of the cell: definitions, Jacobian blocks, backward)."""
    c = derive.cell(name)
    exprs = [eq.rhs for eq in c.equations + c.readout]
    exprs += list(c.step_jacobian().values())
    exprs += [e for _, e in c.backward().outputs()]
    return c, exprs


def test_sum_breaks_before_each_top_level_sign_with_its_depth():
    """W - U + diag(f + g) V: a depth-0 break before the outer '-' and '+', a depth-1 break
    before the '+' inside a long diag, a depth-1.5 break (PRODUCT_BREAK) between the factors
    of the product; a short bracketed sum is not split; the pieces join to the one-line print."""
    W, U, V = (Param(n, H, H) for n in ("W_hh", "W_xh", "W_hy"))
    f, g = Var("f" * 30, H, 1), Var("g" * 30, H, 1)
    e = add([W, scale(-1, U), matmul(diag(add([f, g], (H, 1))), V)], (H, H))
    b = printer().breakable(e)
    F, G = (r"\mathit{%s}_t" % (n * 30) for n in "fg")
    assert b.pieces == (Piece("W_{hh}"), Piece(" - W_{xh}", 0),
                        Piece(r" + \operatorname{diag}\bigl(%s" % F, 0),
                        Piece(r" + %s\bigr)" % G, 1), Piece(" W_{hy}", 1 + L.PRODUCT_BREAK))
    assert b.flat() == expr_latex(e) == printer().doprint(e)
    short = add([W, matmul(diag(add([Var("f", H, 1), Var("g", H, 1)], (H, 1))), V)], (H, H))
    assert printer().breakable(short).pieces[1] == Piece(r" + \operatorname{diag}\bigl(f_t + g_t\bigr)", 0)


def test_products_break_only_where_the_equation_does_not_fit_otherwise():
    """Breaks between the factors of a matrix product and of a Hadamard product are the last
    resort: a layout that fits without them (within PRODUCT_SLACK) is kept as it is; a
    product wider than the line is split between factors (Hadamard continuation lines start
    with \\odot), and every line then fits."""
    long = [Var(n * 14, H, 1) for n in "abcdefgh"]
    W = Param("W_hh", H, H)
    e = matmul(diag(hadamard(long[:4])), diag(hadamard(long[4:])), W)     # no sum at all
    b = printer().breakable(e)
    assert set(b.breaks()) == {L.PRODUCT_BREAK}
    lines = layout_rhs(b, L.LINE_WIDTH)
    assert len(lines) > 1 and "".join(t for _, t in lines).replace(" ", "") == b.flat().replace(" ", "")
    assert all(L.visual_width(t) <= L.LINE_WIDTH for _, t in lines)
    small = matmul(diag(Var("f", H, 1)), W)
    assert layout_rhs(printer().breakable(small), L.LINE_WIDTH) == [(None, printer().doprint(small))]


def test_terms_of_a_nested_sum_are_one_level_deeper_at_every_level():
    """a + (b ⊙ (c + diag(d + e) f)) style nesting: depths count the sums around the sign
    (long names: a parenthesised sum shorter than a third of a line is kept whole)."""
    a, b_, c, d, e, f = (Var(n * 12, H, 1) for n in "abcdef")
    inner = add([d, e], (H, 1))
    mid = add([c, matmul(diag(inner), f)], (H, 1))
    expr = add([a, hadamard([b_, mid])], (H, 1))
    b = printer().breakable(expr)
    sums = [p for p in b.pieces[1:] if p.depth % 1 == 0]
    assert [p.depth for p in sums] == [0, 1, 2]
    assert [p.text.lstrip()[0] for p in sums] == ["+", "+", "+"]
    # the factor breaks: before the Hadamard factor (depth 1.5), before f (depth 2.5)
    assert [p.depth for p in b.pieces[1:] if p.depth % 1] == [1 + L.PRODUCT_BREAK, 2 + L.PRODUCT_BREAK]


@pytest.mark.parametrize("name", NAMES)
def test_no_control_character_in_any_printed_latex(name):
    """Every derived expression printed one-line or as pieces, and the cell's snippet, hold
    no NUL/SOH (the old break marks); every piece has balanced braces (no break in a group)."""
    c, exprs = _derived(name)
    pr = printer(c)
    for e in exprs:
        b = pr.breakable(e)
        assert b.flat() == expr_latex(e, cell=c)
        for p in b.pieces:
            assert "\x00" not in p.text and "\x01" not in p.text
            assert p.text.count("{") == p.text.count("}"), p
        assert "\x00" not in expr_latex(e, cell=c) and "\x01" not in expr_latex(e, cell=c)
    snippet = derive.latex(name)
    assert "\x00" not in snippet and "\x01" not in snippet


def test_the_mark_helpers_are_gone_and_str_is_refused():
    """No string-mark API remains; a Breakable cannot be %-formatted into a string (which
    would drop its breaks silently): .flat() is the one-line form."""
    assert not hasattr(L, "mark") and not hasattr(L, "strip_breaks")
    b = Breakable.of("a").then(0, " + b")
    with pytest.raises(TypeError, match="flat"):
        "%s" % b
    assert b.flat() == "a + b"


def test_eq_lays_out_a_breakable_and_a_plain_string_alike():
    c = derive.cell("lstm_peephole")
    J = c.jacobian("h", "h")
    pr = printer(c)
    broken = align_env([Eq("J", pr.breakable(J), "x")], width=200.0)
    flat = align_env([Eq("J", pr.doprint(J), "x")], width=200.0)
    assert broken.count(r"\notag") >= 2 and r"\notag" not in flat


# -- properties ------------------------------------------------------------------------------

TOKENS = ["a", "b", " ", " + ", " - ", r"\odot", "{x}", "_{t}", r"\bigl(", r"\bigr)",
          r"\frac{1}{2}"]
TEXT = st.lists(st.sampled_from(TOKENS), max_size=5).map("".join)


@st.composite
def breakables(draw):
    first = draw(TEXT)
    rest = draw(st.lists(st.tuples(st.integers(0, 3), TEXT), max_size=12))
    return Breakable((Piece(first),) + tuple(Piece(t, d) for d, t in rest))


def _check_layout(b, width):
    """The lines are consecutive segments of b.flat() (only whitespace at a line start is
    dropped) and every line after the first starts at one of b's breaks."""
    lines = layout_rhs(b, width)
    flat = b.flat()
    starts, pos = set(), 0
    for p in b.pieces:
        if p.depth is not None:
            starts.add(pos)
        pos += len(p.text)
    pos = 0
    for k, (depth, text) in enumerate(lines):
        if k and text:
            skip = len(flat[pos:]) - len(flat[pos:].lstrip())
            assert any(pos <= s <= pos + skip for s in starts), (pos, text)
        if not flat.startswith(text, pos):
            pos += len(flat[pos:]) - len(flat[pos:].lstrip())
        assert flat.startswith(text, pos), (flat, lines)
        pos += len(text)
    assert not flat[pos:].strip(), (flat, lines)       # at most trailing whitespace dropped
    return lines


@given(breakables(), st.floats(1.0, 400.0))
def test_layout_only_splits_flat_at_breaks(b, width):
    """Any Breakable at any width: joining the laid-out lines gives ``flat()`` back (up to
    whitespace at line starts and at the very end), and lines start only at breaks."""
    _check_layout(b, width)


@given(st.sampled_from(NAMES), st.data(), st.floats(40.0, 400.0))
def test_layout_of_derived_expressions_only_splits_at_breaks(name, data, width):
    """The same for the printed derived expressions of the built-in cells, and each line
    has balanced braces."""
    c, exprs = _derived(name)
    b = printer(c).breakable(data.draw(st.sampled_from(exprs)))
    for _, text in _check_layout(b, width):
        assert text.count("{") == text.count("}")


@given(breakables(), breakables(), st.integers(0, 3))
def test_concatenation_keeps_text_and_breaks(a, b, depth):
    """``+`` and :meth:`Breakable.then` are concatenation: flat texts join, break depths
    join (``then`` adding one break of its depth in between)."""
    assert (a + b).flat() == a.flat() + b.flat()
    assert (a + b).breaks() == a.breaks() + b.breaks()
    assert ("x" + a).flat() == "x" + a.flat() and (a + "x").breaks() == a.breaks()
    t = a.then(depth, b)
    assert t.flat() == a.flat() + b.flat() and t.breaks() == a.breaks() + [depth] + b.breaks()


def test_a_breakable_starts_without_a_break():
    with pytest.raises(ValueError):
        Breakable((Piece("x", 0),))
    assert Breakable.join(" ", []).flat() == ""
    assert re.fullmatch(r"a \\odot b", Breakable.join(r" \odot ", ["a", "b"]).flat())
