"""verify.gradcheck on functions with known gradients, right and wrong."""
import numpy
import pytest

from verify.gradcheck import gradcheck


def _problem():
    rng = numpy.random.default_rng(0)
    W = rng.standard_normal((3, 2))
    v = rng.standard_normal(2)

    def loss(a):
        return float(numpy.sum(numpy.tanh(a["W"] @ a["v"])))
    t = 1 - numpy.tanh(W @ v) ** 2
    grads = {"W": numpy.outer(t, v), "v": W.T @ t}
    return loss, {"W": W, "v": v}, grads


def test_correct_gradients_pass():
    loss, arrays, grads = _problem()
    before = {k: a.copy() for k, a in arrays.items()}
    rep = gradcheck(loss, arrays, grads)
    assert rep.ok(atol=1e-8, rtol=1e-8)
    assert all(e.max_abs < 1e-8 for e in rep.errors.values())
    assert all(numpy.array_equal(before[k], arrays[k]) for k in arrays)   # inputs untouched


def test_a_wrong_entry_is_located():
    loss, arrays, grads = _problem()
    grads["W"] = grads["W"].copy()
    grads["W"][2, 1] += 0.1
    rep = gradcheck(loss, arrays, grads)
    err = rep.errors["W"]
    assert err.worst == (2, 1) and err.max_abs == pytest.approx(0.1, rel=1e-6)
    assert not rep.ok() and rep.failing()[0].name == "W"
    assert rep.errors["v"].ok()
    assert "W" in str(rep)


def test_wrong_shape_is_a_clear_error():
    loss, arrays, grads = _problem()
    grads["v"] = grads["v"][:1]
    with pytest.raises(ValueError, match="'v'.*shape"):
        gradcheck(loss, arrays, grads)


def test_gradcheck_kernel_reads_H_from_a_parameter_that_has_it():
    """A user cell whose first parameter is D x H: the initial states are (B, H), not (B, D)."""
    import derive
    from derive.spec.tables import parse_spec
    from verify.gradcheck import gradcheck_kernel
    cell = parse_spec('[cell]\nname = "d_first"\nstates = ["h"]\n[params]\nV = ["D", "H"]\n'
                      'W = ["H", "D"]\n[equations]\nh = "tanh(W @ (x + V @ h_prev))"\n', "d_first.toml")
    k = derive.kernels(cell)
    p = k.init_params(3, 4, rng=0)
    report = gradcheck_kernel(k, p, numpy.random.default_rng(1).standard_normal((2, 2, 3)))
    assert set(report.errors) == {"V", "W", "h0"} and report.ok(atol=1e-6, rtol=1e-5)
