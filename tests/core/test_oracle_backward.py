"""Every output of every derived backward step, proved equal to SymPy's scalar calculus.

With symbol vectors ``Delta_s`` for the gradients reaching the new states and the scalar
``L = sum_s Delta_s . s_t`` of the explicit forward pass (H = n = 1..4, D = 2):

* ``delta s'_{t-1}`` must equal ``sum_s J_{s s'}^T Delta_s`` with the oracle Jacobians
  (SymPy ``Matrix.jacobian``);
* ``delta x`` must equal ``sum_s J_{s x}^T Delta_s``;
* every parameter gradient must equal ``dL/dtheta`` entry by entry (SymPy ``diff``), and a
  parameter the backward step leaves out must have a zero oracle gradient.

Runtime (2 cores, SymPy 1.14): all 16 cells at n = 1..4 take about a minute and a half; the
largest single case is lstm_fgr at n = 4 (10-17 s).
"""
import pytest
from sympy import MatMul, Transpose, ZeroMatrix

import derive
from conftest import explicit_sizes
from verify.explicit import entries_equal, expand

D = 2


def _cases():
    for name in derive.cells():
        for n in explicit_sizes(name, backward=True):
            yield pytest.param(name, n, id=f"{name}-n{n}")


def _oracle_name(cell, key):
    for s, sym in cell.prev.items():
        if sym.name == key:
            return s
    return key


@pytest.mark.parametrize("name,n", list(_cases()))
def test_backward_step_equals_sympy_gradients(name, n):
    ex = expand(name, n, D)
    cell = ex.cell
    derived = ex.derived_backward()
    expected = {p.name for p in cell.prev.values()} | {"x"} | set(cell.params)
    failures = []
    for key in sorted(expected):
        oracle = ex.oracle_vjp(_oracle_name(cell, key))
        got = derived.get(key)
        if got is None:                       # the engine found no gradient: must be zero
            assert all(v == 0 for v in oracle), f"{name}: missing gradient for {key}"
            continue
        assert got.shape == oracle.shape, (key, got.shape, oracle.shape)
        bad = entries_equal(got, oracle)
        if bad:
            i, j, a, b = bad[0]
            failures.append(f"delta_{key}[{i},{j}]: derived {a}\n    oracle {b}")
    assert not failures, f"{name} at n={n}:\n" + "\n".join(failures)


# -- the oracle catches wrong backward steps ------------------------------------------

def _strip_transposes(e):
    return e.replace(lambda a: isinstance(a, Transpose), lambda a: a.arg)


def test_oracle_rejects_untransposed_recurrent_weight():
    """delta h_{t-1} = W_hh delta_a (transpose forgotten) is wrong for n >= 2."""
    cell = derive.cell("rnn_sigmoid")
    bw = cell.backward()
    ex = expand("rnn_sigmoid", 2, D)
    adj = ex.adjoint_values()
    wrong = ex.explicit(_strip_transposes(bw.prev_states["h"]), extra=adj)
    assert entries_equal(wrong, ex.oracle_vjp("h"))


def test_oracle_rejects_dropping_peephole_terms_in_delta_c_prev():
    """delta c_{t-1} = delta_c * f alone (the seed's dc_t/dc_{t-1} = f_t) misses the
    peephole paths through i and f."""
    cell = derive.cell("lstm_peephole")
    bw = cell.backward()
    full = bw.prev_states["c"]
    ex = expand("lstm_peephole", 1, D)
    adj = ex.adjoint_values()
    assert not entries_equal(ex.explicit(full, extra=adj), ex.oracle_vjp("c"))
    for k in range(len(full.args)):
        partial = full.func(*(full.args[:k] + full.args[k + 1:]))
        assert entries_equal(ex.explicit(partial, extra=adj), ex.oracle_vjp("c")), k


def test_oracle_rejects_transposed_outer_product():
    """delta W_hh = h_prev delta_a^T (outer product the wrong way round) is caught."""
    cell = derive.cell("rnn_tanh")
    grad = cell.backward().params["W_hh"]
    assert isinstance(grad, MatMul)
    ex = expand("rnn_tanh", 2, D)
    adj = ex.adjoint_values()
    wrong = ex.explicit(grad.T, extra=adj)
    assert entries_equal(wrong, ex.oracle_vjp("W_hh"))
    assert not isinstance(grad, ZeroMatrix)
