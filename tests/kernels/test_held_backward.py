"""The backward with the holdable states held constant (issue 16: "the kernels offer that cheaper
backward and a test proves it equal").

A spec's ``[cell] holdable`` names the states the outputs do not depend on (sLSTM's and mLSTM's
stabiliser m; ``python -m verify`` proves it: ``slstm.stabiliser``, ``mlstm.stabiliser``). The
generated module then has ``HOLDABLE`` and ``backward(..., held=True)``, the backward of
``cell.holding(*HOLDABLE)`` reading the ordinary forward's cache. It equals the full BPTT for
every parameter, dL/dxs and the other states' dstate0 for a loss of the outputs (h_1..h_T and
the final h). The held states' own dstate0 is 0 by construction, not dL/dm_0 (with c_0, n_0
stored in stabilised form, moving m_0 moves the true states: the full backward's dL/dm_0 is
dL/dc_0 ⊙ c_0 + dL/dn_0 ⊙ n_0, checked here for sLSTM). The option is refused where it does
not apply: a cell with nothing to hold, a dstate on another state than the output.
"""
import numpy
import pytest

import derive
from conftest import states_like

HELD = ["slstm", "mlstm"]


def _case(name, T=9, B=2, D=3, H=4, seed=0):
    k = derive.kernels(name)
    rng = numpy.random.default_rng(seed)
    p = k.init_params(D, H, rng=rng)
    xs = rng.standard_normal((T, B, D)) * 2
    s0 = states_like(k, B, H, lambda shape: rng.standard_normal(shape))
    s0 = tuple(numpy.abs(a) + 0.5 if s == "n" else a for s, a in zip(k.STATE, s0))
    return k, p, xs, s0, rng


@pytest.mark.parametrize("name", HELD)
def test_the_held_backward_equals_the_full_backward(name):
    k, p, xs, s0, rng = _case(name)
    assert k.HOLDABLE == ("m",) == derive.cell(name).holdable
    hs, cache = k.forward(p, xs, s0)
    dhs = rng.standard_normal(hs.shape)
    ds = tuple(rng.standard_normal(a.shape) if s == k.OUTPUT else numpy.zeros_like(a)
               for s, a in zip(k.STATE, s0))
    full = k.backward(p, cache, dhs, ds, return_dxs=True)
    held = k.backward(p, cache, dhs, ds, return_dxs=True, held=True)
    for n in p:
        numpy.testing.assert_allclose(held[0][n], full[0][n], rtol=1e-10, atol=1e-12, err_msg=n)
    for s, a, b in zip(k.STATE, held[1], full[1]):
        if s in k.HOLDABLE:
            assert not a.any(), s
        else:
            numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=s)
    numpy.testing.assert_allclose(held[2], full[2], rtol=1e-10, atol=1e-12)
    if name == "slstm":
        d = dict(zip(k.STATE, full[1]))
        st = dict(zip(k.STATE, s0))
        numpy.testing.assert_allclose(d["m"], d["c"] * st["c"] + d["n"] * st["n"], rtol=1e-9,
                                      atol=1e-12)


@pytest.mark.parametrize("name", HELD)
def test_the_held_backward_has_no_path_through_m(name):
    """The held backward is a different program: its math has no delta_m (the full one has)."""
    k = derive.kernels(name)
    cell = derive.cell(name)
    full = {d.name for d, _ in cell.backward().assignments}
    held = {d.name for d, _ in cell.holding("m").backward().assignments}
    assert "delta_m" in full and "delta_m" not in held


def test_held_is_refused_where_it_does_not_apply():
    k, p, xs, s0, rng = _case("lstm")
    assert k.HOLDABLE == ()
    hs, cache = k.forward(p, xs, s0)
    with pytest.raises(ValueError, match=r"^backward\(held=True\): cell 'lstm' has no holdable state"):
        k.backward(p, cache, numpy.zeros_like(hs), held=True)
    k, p, xs, s0, rng = _case("slstm")
    hs, cache = k.forward(p, xs, s0)
    ds = tuple(numpy.ones_like(a) for a in s0)
    with pytest.raises(ValueError, match=r"^backward\(held=True\): dstate for 'c' must be zero "
                                         r"\(the held backward is exact for a loss of the outputs 'h' alone"):
        k.backward(p, cache, numpy.zeros_like(hs), ds, held=True)


def test_a_holdable_name_that_is_not_a_state_is_refused(tmp_path):
    from derive.spec import SpecError
    text = (derive.cell_spec_text("slstm") if hasattr(derive, "cell_spec_text") else
            open(derive.cell("slstm").source, encoding="utf-8").read())
    path = tmp_path / "bad.toml"
    path.write_text(text.replace('holdable = ["m"]', 'holdable = ["q"]'), encoding="utf-8")
    with pytest.raises(SpecError, match=r"bad\.toml:7:\d+: \[cell\] holdable names 'q', which is "
                                         r"not a state; the states are c, n, m, h"):
        derive.cell_from_spec(path)
