"""verify.check_cell against implementations written here: a correct CS231n-style LSTM and
RNN, deliberately buggy ones, functions that raise or return garbage, PyTorch's LSTMCell."""
import numpy
import pytest

from verify import CS231nLayout, SeedLayout, TorchLayout, check_cell
from verify.layouts import layout_for

N = 25          # examples per check (each is a full forward + backward comparison)


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


# ---- a correct CS231n-style LSTM (gate order i, f, o, g) -----------------------------------
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b, order="ifog"):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    blocks = {k: a[:, j * H:(j + 1) * H] for j, k in enumerate(order)}
    i, f, o, g = (sigmoid(blocks["i"]), sigmoid(blocks["f"]), sigmoid(blocks["o"]),
                  numpy.tanh(blocks["g"]))
    next_c = f * prev_c + i * g
    next_h = o * numpy.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, forget_bug=False):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = numpy.tanh(next_c)
    do = dnext_h * tc
    dc = dnext_c + dnext_h * o * (1 - tc ** 2)
    di, dg, dprev_c = dc * g, dc * i, dc * f
    df = dc if forget_bug else dc * prev_c            # the bug: forgets the c_{t-1} factor
    da = numpy.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


# ---- a correct CS231n-style tanh RNN -------------------------------------------------------
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = numpy.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def test_correct_cs231n_lstm_passes():
    res = check_cell("lstm", forward=lstm_step_forward, backward=lstm_step_backward,
                     layout=CS231nLayout("lstm"), max_examples=N, seed=1)
    assert res.ok, str(res)
    assert res.examples >= N and "OK" in str(res)


def test_correct_cs231n_rnn_passes():
    res = check_cell("rnn_tanh", forward=rnn_step_forward, backward=rnn_step_backward,
                     layout=CS231nLayout("rnn_tanh"), max_examples=N, seed=2)
    assert res.ok, str(res)


def test_forget_gate_derivative_bug_is_located():
    res = check_cell("lstm", forward=lstm_step_forward,
                     backward=lambda dh, dc, cache: lstm_step_backward(dh, dc, cache, forget_bug=True),
                     layout=CS231nLayout("lstm"), max_examples=N, seed=3)
    assert not res.ok
    wrong = {m.what for m in res.mismatches}
    # only the forget gate's blocks (columns H:2H) and what flows back through them differ
    forget = {"(W_xf)", "(W_hf)", "(b_f)"}
    assert any("(b_f)" in w for w in wrong)
    assert all(w in ("dx", "dprev_h") or any(f in w for f in forget) for w in wrong), wrong
    assert all(m.phase == "backward" and m.kind == "value" for m in res.mismatches)
    bf = next(m for m in res.mismatches if "(b_f)" in m.what)
    assert bf.max_abs > 1e-6 and bf.index is not None
    # shrunk to the minimal case: one row, one unit, one input feature
    assert res.case["x"].shape == (1, 1) and res.case["state"][0].shape == (1, 1)
    assert "db[1:2] (b_f)" in str(res)


def test_swapped_gate_order_is_caught_in_forward():
    res = check_cell("lstm", forward=lambda *a: lstm_step_forward(*a, order="ifgo"),
                     layout=CS231nLayout("lstm"), max_examples=N, seed=4)
    assert not res.ok
    assert {m.what for m in res.mismatches} <= {"next_h", "next_c"}
    assert any(m.what == "next_h" for m in res.mismatches)


@pytest.mark.parametrize("bad, kind", [
    (lambda *a: (_ for _ in ()).throw(RuntimeError("boom")), "error"),
    (lambda x, h, c, Wx, Wh, b: (h[None], c, None), "shape"),
    (lambda x, h, c, Wx, Wh, b: (h * numpy.nan, c, None), "nonfinite"),
    (lambda x, h, c, Wx, Wh, b: (h,), "type"),
])
def test_broken_user_functions_are_reported_not_raised(bad, kind):
    res = check_cell("lstm", forward=bad, layout=CS231nLayout("lstm"), max_examples=5, seed=5)
    assert not res.ok
    kinds = {m.kind for m in res.mismatches}
    assert kind in kinds or (kind == "type" and "error" in kinds), str(res)


def test_in_place_modification_is_reported():
    def mutating(x, h, c, Wx, Wh, b):
        out = lstm_step_forward(x, h, c, Wx, Wh, b)
        c += 1.0
        return out
    res = check_cell("lstm", forward=mutating, layout=CS231nLayout("lstm"), max_examples=5, seed=6)
    mutated = [m for m in res.mismatches if m.kind == "mutated"]
    assert mutated and mutated[0].message.endswith(": c_prev")


def test_in_place_modification_names_the_input():
    def scaling(x, h, Wx, Wh, b):
        x *= 2
        return rnn_step_forward(x, h, Wx, Wh, b)
    res = check_cell("rnn_tanh", forward=scaling, layout=CS231nLayout("rnn_tanh"), max_examples=5, seed=6)
    assert [m.message for m in res.mismatches if m.kind == "mutated"] == ["modified its inputs in place: x"]


def test_a_function_that_keeps_state_between_calls_is_a_failed_result():
    """A forward that memoises its weights (refreshed only when their shapes change) gives
    different results for the same case: a failed result naming determinism, not a
    Hypothesis traceback."""
    kept = {}

    def forward(x, h, Wx, Wh, b):
        if "W" not in kept or kept["W"][0].shape != Wx.shape or kept["W"][1].shape != Wh.shape:
            kept["W"] = (Wx.copy(), Wh.copy())
        return rnn_step_forward(x, h, *kept["W"], b)
    res = check_cell("rnn_tanh", forward=forward, layout=CS231nLayout("rnn_tanh"), max_examples=100, seed=3)
    assert not res.ok and res.mismatches, str(res)


def test_a_function_whose_result_changes_from_call_to_call_is_named_nondeterministic():
    """Every other call is wrong: the minimal case, run once more, passes, so the report
    names determinism (not a value mismatch that a rerun would not reproduce)."""
    calls = [0]

    def forward(x, h, Wx, Wh, b):
        calls[0] += 1
        nh, cache = rnn_step_forward(x, h, Wx, Wh, b)
        return (nh + 1 if calls[0] % 2 else nh), cache
    for seed in (3, 4):
        res = check_cell("rnn_tanh", forward=forward, layout=CS231nLayout("rnn_tanh"),
                         max_examples=50, seed=seed)
        assert [m.what for m in res.mismatches] == ["determinism"] and "deterministic" in str(res)


def test_an_output_of_the_wrong_dtype_is_named():
    def single(x, h, Wx, Wh, b):
        next_h, cache = rnn_step_forward(x, h, Wx, Wh, b)
        return next_h.astype(numpy.float32), cache
    res = check_cell("rnn_tanh", forward=single, layout=CS231nLayout("rnn_tanh"), max_examples=5, seed=9)
    assert not res.ok
    (m,) = res.mismatches
    assert m.what == "next_h" and m.kind == "dtype" and "float32" in m.message and "float64" in m.message


def test_seed_layout_with_the_kernels_themselves():
    from verify.properties import reference_kernels
    k = reference_kernels("lstm_peephole")
    res = check_cell("lstm_peephole", forward=lambda p, x, s: k.step(p, x, s),
                     layout=SeedLayout("lstm_peephole"), max_examples=10, seed=7)
    assert res.ok, str(res)


def test_bad_arguments_are_clear_errors():
    import derive
    with pytest.raises(derive.UnknownCellError, match="nope"):
        check_cell("nope", forward=lstm_step_forward)
    with pytest.raises(ValueError, match="forward= and/or backward="):
        check_cell("lstm")
    with pytest.raises(ValueError, match="CS231n packing"):
        CS231nLayout("lstm_peephole")
    with pytest.raises(ValueError, match="no PyTorch layout"):
        TorchLayout("lstm_peephole")
    with pytest.raises(ValueError, match="unknown layout"):
        layout_for("lstm", "keras")
    rnn = {"forward": rnn_step_forward, "layout": CS231nLayout("rnn_tanh")}
    for kwargs, words in [({"dtype": numpy.float16}, "dtype"), ({"dtype": "floot32"}, "floot32"),
                          ({"dtype": int}, "dtype"), ({"hidden": 0}, "hidden"),
                          ({"batch": -1}, "batch"), ({"input_size": 1.5}, "input_size"),
                          ({"seed": "x"}, "seed"), ({"scale": 0}, "scale"),
                          ({"max_examples": 0}, "max_examples"), ({"atol": -1}, "atol")]:
        with pytest.raises(ValueError, match=words):
            check_cell("rnn_tanh", **rnn, **kwargs)
    with pytest.raises(TypeError, match="forward must be a function, got str"):
        check_cell("rnn_tanh", forward="rnn_step_forward", layout=CS231nLayout("rnn_tanh"))


def test_torch_lstm_cell_conforms_through_the_torch_layout():
    torch = pytest.importorskip("torch")

    def cell(weights):
        m = torch.nn.LSTMCell(weights["weight_ih_l0"].shape[1], weights["weight_hh_l0"].shape[1],
                              dtype=torch.float64)
        with torch.no_grad():
            for k, v in weights.items():
                getattr(m, k.replace("_l0", "")).copy_(torch.from_numpy(numpy.asarray(v)))
        return m

    def forward(x, state, weights):
        with torch.no_grad():
            h, c = cell(weights)(torch.from_numpy(x), tuple(torch.from_numpy(s) for s in state))
        return h.numpy(), c.numpy()

    def backward(x, state, weights, dstate):
        m = cell(weights)
        xt = torch.from_numpy(x).requires_grad_()
        st = tuple(torch.from_numpy(s).requires_grad_() for s in state)
        h, c = m(xt, st)
        (h * torch.from_numpy(dstate[0])).sum().add((c * torch.from_numpy(dstate[1])).sum()).backward()
        grads = {k: getattr(m, k.replace("_l0", "")).grad.numpy() for k in weights}
        return grads, xt.grad.numpy(), tuple(s.grad.numpy() for s in st)

    res = check_cell("lstm", forward=forward, backward=backward, layout=TorchLayout("lstm"),
                     max_examples=10, seed=8)
    assert res.ok, str(res)
