"""Layout adapters: round trips, and the packing checked against the cell equations and,
when installed, PyTorch itself."""
import numpy
import pytest

import derive
from verify import properties as P
from verify.layouts import CS231nLayout, SeedLayout, TorchLayout

TORCH_CELLS = [c for c in derive.cells() if derive.cell(c).torch]


def _params(name, D=3, H=2, seed=0):
    return P.reference_kernels(name).init_params(D, H, rng=numpy.random.default_rng(seed))


@pytest.mark.parametrize("layout", [SeedLayout("lstm"), TorchLayout("lstm"), CS231nLayout("lstm"),
                                    TorchLayout("rnn_tanh"), CS231nLayout("rnn_tanh")])
def test_round_trip(layout):
    p = _params(layout.cell.name)
    back = layout.from_user(layout.to_user(p))
    assert set(back) == set(p)
    for k in p:
        numpy.testing.assert_allclose(back[k], p[k], rtol=0, atol=1e-15)


def test_cs231n_shapes_and_gate_order():
    p = _params("lstm", D=3, H=2)
    u = CS231nLayout("lstm").to_user(p)
    assert u["Wx"].shape == (3, 8) and u["Wh"].shape == (2, 8) and u["b"].shape == (8,)
    # i, f, o, g: the third block of columns is the output gate's
    numpy.testing.assert_array_equal(u["Wx"][:, 4:6], p["W_xo"].T)
    numpy.testing.assert_array_equal(u["b"][6:8], p["b_c"])


def test_torch_bias_split_sums_to_the_seed_bias():
    p = _params("lstm")
    u = TorchLayout("lstm").to_user(p)
    numpy.testing.assert_allclose(u["bias_ih_l0"] + u["bias_hh_l0"],
                                  numpy.concatenate([p["b_i"], p["b_f"], p["b_c"], p["b_o"]]))
    assert not numpy.allclose(u["bias_hh_l0"], 0)        # both biases are exercised


def test_grad_views_label_every_block():
    p = _params("lstm", H=2)
    views = CS231nLayout("lstm").grad_views({"dWx": CS231nLayout("lstm").to_user(p)["Wx"],
                                             "dWh": CS231nLayout("lstm").to_user(p)["Wh"],
                                             "db": CS231nLayout("lstm").to_user(p)["b"]})
    assert {v.param for v in views} == set(p)
    for v in views:
        numpy.testing.assert_array_equal(v.array, p[v.param])


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_torch_layout_matches_pytorch(name):
    """PyTorch's own module, loaded with TorchLayout.to_user, steps like the cell's equations."""
    torch = pytest.importorskip("torch")
    c = derive.cell(name)
    p = _params(name, D=3, H=4, seed=3)
    u = TorchLayout(name).to_user(p)
    mod_cls = {"LSTM": torch.nn.LSTMCell, "RNN": torch.nn.RNNCell, "GRU": torch.nn.GRUCell}[c.torch["module"]]
    kw = {"nonlinearity": c.torch["nonlinearity"]} if "nonlinearity" in c.torch else {}
    m = mod_cls(3, 4, dtype=torch.float64, **kw)
    with torch.no_grad():
        for k, v in u.items():
            getattr(m, k.replace("_l0", "")).copy_(torch.from_numpy(v))
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal((2, 3))
    state = tuple(rng.standard_normal((2, 4)) for _ in c.states)
    with torch.no_grad():
        out = m(torch.from_numpy(x), tuple(torch.from_numpy(s) for s in state) if len(state) > 1
                else torch.from_numpy(state[0]))
    out = out if isinstance(out, tuple) else (out,)
    want = P.cell_values(c, p, x, state)
    for s, o in zip(c.states, out):
        numpy.testing.assert_allclose(o.numpy(), want[s], rtol=1e-12, atol=1e-12)
