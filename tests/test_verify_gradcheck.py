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
