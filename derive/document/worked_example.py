"""A worked two-step example: the Elman RNN of the main text with H = 2, D = 1, T = 2, every
number computed at export time by the generated NumPy kernels (``derive.kernels``): forward
states, step Jacobians, what step 2 passes back to h_1, and the parameter gradients of
L = L_1 + L_2 given each loss term's gradient nabla_{h_t} L_t. Computed numbers are printed
with four decimals (``0.1530``), the data as given. Prose in :data:`PROSE`."""
from __future__ import annotations

import numpy
import sympy

from derive.codegen.runtime import kernels
from derive.document.equations import Ctx
from derive.document.model import Display, Heading, Math, Ref, prose
from derive.core.symbols import Cotangent
from derive.printing.latex import Eq

#: The example's data (shapes: W_xh (H, D), W_hh (H, H), b_h (H,); xs (T, 1, D)).
PARAMS = {"W_xh": [[0.5], [-1.0]], "W_hh": [[0.5, -0.25], [0.25, 0.5]], "b_h": [0.0, 0.1]}
XS = [[[1.0]], [[-1.0]]]
H0 = [[0.0, 0.0]]
#: nabla_{h_t} L_t, the gradient of the loss term L_t with respect to its own state h_t.
DHS = [[[0.0, 1.0]], [[1.0, 0.0]]]
DIGITS = 4
_T = sympy.Symbol("t", integer=True)

PROSE = {
    "en": {
        "h": "A worked example with two steps",
        "1": "To see the recursion with numbers, take the network of {sec} with two hidden "
             "units and one input, {dims}, run for two steps from {h0}. The parameters and "
             "the inputs are:",
        "2": "The forward pass gives the two states, and the step Jacobians {J} at the two "
             "steps follow from the states:",
        "3": "Let the loss be {loss}, with the gradients {Delta} of each term with respect to "
             "its own state given below. The backward pass starts at step 2: the gradient "
             "reaching {h2} is {Delta2} alone. Step 2 passes {pass} back to {h1}, which adds "
             "to the gradient of {L1}; step 1 then passes the sum back to {h0}:",
        "4": "Each parameter gradient sums one contribution per step. Because {h0z}, the "
             "recurrent matrix receives nothing from step 1, and its gradient is the outer "
             "product {outer} of the gradient {da2} of the step-2 pre-activation with {h1}:",
        "5": "Every number above is computed by the NumPy kernels generated from the cell's "
             "spec when this document is exported, and rounded to four decimals; the test "
             "suite recomputes them from the equations and checks the parameter gradients "
             "against central differences of the loss.",
    },
    "zh": {
        "h": "两步的数值例子",
        "1": "用数字看一遍这个递推：取{sec}中的网络，隐藏单元两个、输入一维，即 {dims}，"
             "从 {h0} 出发运行两步。参数与输入如下：",
        "2": "前向传播给出两个状态；两步的单步雅可比矩阵 {J} 由状态算出：",
        "3": "设损失为 {loss}，每一项对自身状态的梯度 {Delta} 如下。反向传播从第 2 步开始："
             "到达 {h2} 的梯度只有 {Delta2}。第 2 步把 {pass} 传回 {h1}，与 {L1} 的梯度相加；"
             "第 1 步再把这个和传回 {h0}：",
        "4": "每个参数的梯度是各步贡献之和。由于 {h0z}，循环权重矩阵在第 1 步得不到贡献，"
             "它的梯度就是第 2 步预激活的梯度 {da2} 与 {h1} 的外积 {outer}：",
        "5": "上面每个数字都是在导出本文时，由根据细胞定义生成的 NumPy 内核算出的，"
             "并四舍五入到小数点后四位；测试会按方程重新计算这些数字，并用损失的中心差分"
             "检验参数梯度。",
    },
}


def _num(v) -> sympy.Basic:
    v = round(float(v), DIGITS) + 0.0          # + 0.0 turns -0.0 into 0.0
    if v == int(v):
        return sympy.Integer(int(v))
    return sympy.Float("%.*f" % (DIGITS, v), DIGITS)


def _mat(a) -> sympy.Matrix:
    a = numpy.atleast_2d(numpy.asarray(a, dtype=float))
    return sympy.Matrix([[_num(v) for v in row] for row in a])


def _col(v) -> sympy.Matrix:
    return _mat(numpy.asarray(v, dtype=float).reshape(-1, 1))


def _fixed(a) -> str:
    """A computed matrix or column as LaTeX, every entry with :data:`DIGITS` decimals
    (``0.1530``; an exact zero as 0), as the text promises."""
    a = numpy.atleast_2d(numpy.asarray(a, dtype=float))

    def entry(v):
        s = "%.*f" % (DIGITS, v)
        return "0" if v == 0 else s.replace("-0." + "0" * DIGITS, "0." + "0" * DIGITS)
    rows = [" & ".join(entry(v) for v in row) for row in a]
    return r"\left[\begin{matrix}%s\end{matrix}\right]" % r"\\".join(rows)


def _fixed_col(v) -> str:
    return _fixed(numpy.asarray(v, dtype=float).reshape(-1, 1))


def numbers(cell_name: str = "rnn_sigmoid") -> dict:
    """The example's numbers, from the generated kernels: hs (T, H), J (T, H, H),
    pass2 = what step 2 passes back to h_1, dh1 = the gradient reaching h_1, dh0, and the
    parameter gradients ``grads``."""
    k = kernels(cell_name)
    p = {n: numpy.asarray(v, dtype=float) for n, v in PARAMS.items()}
    xs, h0, dhs = (numpy.asarray(a, dtype=float) for a in (XS, H0, DHS))
    hs, cache = k.forward(p, xs, (h0,))
    grads, dstate0 = k.backward(p, cache, dhs)
    prevs = [h0, hs[0]]
    J = [k.step_jacobian(p, xs[t], (prevs[t],))[0] for t in range(2)]
    _, c2 = k.forward(p, xs[1:], (hs[0],))
    _, pass2 = k.backward(p, c2, dhs[1:])
    return {"hs": hs[:, 0], "J": J, "pass2": pass2[0][0], "dh1": dhs[0, 0] + pass2[0][0],
            "dh0": dstate0[0][0], "grads": {n: g for n, g in grads.items()}}


def worked_example_blocks(notation=None, lang="en") -> list:
    """The section: data, forward states, step Jacobians, backward pass, parameter gradients."""
    from derive.spec.registry import cell as builtin
    from derive.document.teaching import ELMAN
    P = PROSE[lang]
    c = builtin(ELMAN)
    ctx = Ctx.of(c, notation)
    pr = Ctx.of(None, None)
    n = numbers(ELMAN)
    one, two = sympy.Integer(1), sympy.Integer(2)
    h = lambda t: ctx.state("h", sympy.sympify(t))  # noqa: E731
    delta = lambda t: r"\nabla_{%s} L_{%s}" % (h(t), t)  # noqa: E731  (given, per loss term)
    back = lambda t: ctx.p(ctx.prev_adjoint("h"), sympy.Integer(t))  # noqa: E731
    W = {name: ctx.param(name) for name in PARAMS}
    a_name = c.elman_form().preactivation.name
    data = [Eq(W[name], pr.p(_mat(v) if name != "b_h" else _col(v)), None) for name, v in PARAMS.items()]
    data += [Eq(r"%s,\ %s" % (ctx.var("x", one), ctx.var("x", two)),
                r"%s,\ %s" % (pr.p(_num(XS[0][0][0])), pr.p(_num(XS[1][0][0]))), None),
             Eq(h(0), pr.p(_col(H0[0])), None)]
    fwd = [Eq(h(t + 1), _fixed_col(n["hs"][t]), None) for t in range(2)]
    jac = [Eq(r"J_{%d} = \frac{\partial %s}{\partial %s}" % (t + 1, h(t + 1), h(t)),
              _fixed(n["J"][t]), None) for t in range(2)]
    bw = [Eq(delta(1), pr.p(_col(DHS[0][0])), None), Eq(delta(2), pr.p(_col(DHS[1][0])), None),
          Eq(back(2), r"J_2^{\top} %s = %s" % (delta(2), _fixed_col(n["pass2"])), None),
          Eq(r"\frac{\partial L}{\partial %s}" % h(1),
             r"%s + %s = %s" % (delta(1), back(2), _fixed_col(n["dh1"])), None),
          Eq(back(1), r"J_1^{\top} \frac{\partial L}{\partial %s} = %s"
             % (h(1), _fixed_col(n["dh0"])), None)]
    grads = [Eq(r"\frac{\partial L}{\partial %s}" % W[name],
                _fixed_col(g) if g.ndim == 1 else _fixed(g),
                None) for name, g in n["grads"].items()]
    dims = Math(r"H = 2,\ D = 1")
    return [
        Heading(1, P["h"], "sec:worked"),
        prose(P["1"], {"sec": Ref("sec:elman", "the section on the Elman RNN", "sec"), "dims": dims,
                       "h0": Math(r"%s = 0" % h(0))}),
        Display(data, "worked example, data"),
        prose(P["2"], {"J": Math(r"J_t = \partial %s / \partial %s" % (h(_T), h(_T - 1)))}),
        Display(fwd + jac, "worked example, forward"),
        prose(P["3"], {"loss": Math("L = L_1 + L_2"), "Delta": Math(delta(_T)),
                       "h2": Math(h(2)), "Delta2": Math(delta(2)), "pass": Math(back(2)),
                       "h1": Math(h(1)), "L1": Math("L_1"), "h0": Math(h(0))}),
        Display(bw, "worked example, backward"),
        prose(P["4"], {"h0z": Math(r"%s = 0" % h(0)), "h1": Math(h(1)),
                       "da2": Math(ctx.p(Cotangent("delta_" + a_name, *c.prev["h"].shape),
                                         two)),
                       "outer": Math(ctx.p(c.backward().params["W_hh"], two))}),
        Display(grads, "worked example, parameter gradients"),
        prose(P["5"]),
    ]
