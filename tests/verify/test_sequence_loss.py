"""verify.check_loss on a min-char-rnn-style lossFun written here (parameters as module
globals, ``lossFun(inputs, targets, hprev) -> (loss, dWxh, dWhh, dWhy, dbh, dby, hs)``),
correct and with planted bugs; independent central differences prove each plant."""
import numpy
import pytest

from verify import check_loss
from verify.oracles import central_difference

V, H = 5, 4
_rng = numpy.random.default_rng(0)
Wxh = _rng.standard_normal((H, V)) * 0.3
Whh = _rng.standard_normal((H, H)) * 0.3
Why = _rng.standard_normal((V, H)) * 0.3
bh = numpy.zeros((H, 1))
by = numpy.zeros((V, 1))
inputs, targets = [0, 1, 2, 3, 4, 1], [1, 2, 3, 4, 1, 0]
hprev = numpy.zeros((H, 1))
NAMES = ("Wxh", "Whh", "Why", "bh", "by")
BUG = {"which": None}


def lossFun(inputs, targets, hprev):
    """Column vectors, softmax cross-entropy; BUG['which'] plants one bug."""
    bug = BUG["which"]
    xs, hs, ps, loss = {}, {-1: numpy.copy(hprev)}, {}, 0.0
    for t in range(len(inputs)):
        xs[t] = numpy.zeros((V, 1))
        xs[t][inputs[t]] = 1
        hs[t] = numpy.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        y = Why @ hs[t] + by
        ps[t] = numpy.exp(y) / numpy.sum(numpy.exp(y))
        loss += -numpy.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = numpy.zeros_like(Wxh), numpy.zeros_like(Whh), numpy.zeros_like(Why)
    dbh, dby, dhnext = numpy.zeros_like(bh), numpy.zeros_like(by), numpy.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = numpy.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy if bug == "no_dhnext" else Why.T @ dy + dhnext
        dhraw = (1 - hs[t] ** 2) * dh
        dbh += dhraw
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    if bug == "sign":
        dby = -dby
    if bug == "clip":
        for d in (dWxh, dWhh, dWhy, dbh, dby):
            numpy.clip(d, -0.05, 0.05, out=d)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


@pytest.fixture(autouse=True)
def _no_bug():
    BUG["which"] = None
    yield
    BUG["which"] = None


def _fd(name):
    g = globals()
    def L(a):
        saved, g[name] = g[name], a
        try:
            return numpy.array(lossFun(inputs, targets, hprev)[0])
        finally:
            g[name] = saved
    return central_difference(L, g[name])


@pytest.mark.parametrize("bug,wrong", [(None, set()), ("no_dhnext", {"Wxh", "Whh", "bh"}),
                                       ("sign", {"by"}), ("clip", set(NAMES))])
def test_the_plants_against_central_differences(bug, wrong):
    BUG["which"] = bug
    got = dict(zip(NAMES, lossFun(inputs, targets, hprev)[1:6]))
    for n in NAMES:
        assert (not numpy.allclose(got[n], _fd(n), atol=1e-7)) == (n in wrong), (bug, n)


def test_a_correct_lossfun_passes_with_no_wrapper():
    r = check_loss(lossFun, params=NAMES, args=(inputs, targets, hprev), seed=0)
    assert r.ok, str(r)
    assert str(r).startswith("check_loss('lossFun', params from globals): OK after 3 of 3")


def test_the_globals_are_restored():
    before = {n: globals()[n].copy() for n in NAMES}
    check_loss(lossFun, params=NAMES, args=(inputs, targets, hprev), seed=0)
    for n in NAMES:
        assert globals()[n] is not None and numpy.array_equal(globals()[n], before[n])


@pytest.mark.parametrize("bug,words", [
    ("no_dhnext", "dWhh: max abs error"), ("sign", "dby: the sign is flipped"),
    ("clip", "clipped to [-0.05, 0.05]")])
def test_planted_bugs_fail_and_are_explained(bug, words):
    BUG["which"] = bug
    r = check_loss(lossFun, params=NAMES, args=(inputs, targets, hprev), seed=0)
    assert not r.ok and words in str(r), str(r)


def test_dict_parameters_and_a_big_array_checked_along_directions():
    """fn(params, x) -> (loss, {dname: grad}); W has 600 entries > max_entries: directions."""
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal(30)

    def f(p, x):
        y = numpy.tanh(p["W"] @ x)
        return 0.5 * float(y @ y), {"dW": numpy.outer(y * (1 - y ** 2), x)}

    def wrong(p, x):
        loss, g = f(p, x)
        return loss, {"dW": 2 * g["dW"]}
    P = {"W": rng.standard_normal((20, 30)) * 0.1}
    assert check_loss(f, params=P, args=(x,), seed=3).ok
    r = check_loss(wrong, params=P, args=(x,), seed=3)
    assert not r.ok and "along random direction" in str(r)


def test_an_in_place_change_of_an_argument_is_named():
    def f(p, x):
        x *= 2
        return float((p["w"] * x).sum()), {"dw": x}
    r = check_loss(f, params={"w": numpy.ones(3)}, args=(numpy.ones(3),), seed=0)
    assert not r.ok and "args[0]" in str(r)
