"""Hand-written references for the matrix-state cells (issue 16), typed from the papers, never
generated from derive/cells/*.toml; imported by the tests and by benchmarks/bench_mlstm.py only.

Layout (the kernels' API): a matrix state is a ``(B, H, H)`` array with ``C[b, i, j]``, a vector
state ``(B, H)``, a scalar state ``(B, 1)``; ``xs`` is ``(T, B, D)``; parameters are keyed as in
the specs, ``(H, D)`` matrices, ``(H,)`` / ``(D,)`` vectors, ``(1,)`` scalars.

* :func:`torch_mlstm`: one mLSTM head, Beck et al. 2024 (arXiv:2405.04517) eqs. (19)-(27) in
  the stabilised form of their appendix: exponential input and forget gates, the stabiliser
  ``m_t = max(f~_t + m_{t-1}, i~_t)``, ``C_t = f' C_{t-1} + i' v_t k_t^T`` (eq. 19, value times
  key), ``n_t = f' n_{t-1} + i' k_t`` (eq. 20), ``h~_t = C_t q_t / max(|n_t^T q_t|, exp(-m_t))``
  (eq. 21, stabilised), ``h_t = o_t * h~_t``, ``k_t = (W_k x_t + b_k) / sqrt(H)``.
  ``layout="code"`` stores the memory as NX-AI/xlstm's ``recurrent_step_stabilized_simple``
  does, ``C_t = f' C_{t-1} + i' k_t v_t^T``, read out as ``q_t^T C_t``;
* :func:`torch_gated_deltanet`: the gated delta rule, Yang, Kautz, Hatamizadeh 2024
  (arXiv:2412.06464), ``S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T`` with an
  explicit identity matrix, ``o_t = S_t q_t``, ``alpha_t = exp(-exp(a) softplus(w_a^T x + b_a))``,
  ``beta_t = sigmoid(w_b^T x + b_b)``, unit-norm ``k``, ``q`` (normalised as the reference
  implementation's l2norm does, u / sqrt(u^T u + eps) with eps = 1e-6: smooth at u = 0);
* :func:`numpy_mlstm` / :func:`numpy_mlstm_backward`: the mLSTM forward and full BPTT (the
  stabiliser's path included) by hand in NumPy, whole-sequence GEMMs for the projections and
  the weight gradients (the benchmark's baseline).
"""
from __future__ import annotations

import math

import numpy

#: eps of the l2 normalisation of k and q (flash-linear-attention's l2norm; the spec's 0.000001)
L2NORM_EPS = 1e-6

MLSTM_SHAPES = {"W_q": "HD", "b_q": "H", "W_k": "HD", "b_k": "H", "W_v": "HD", "b_v": "H",
                "w_i": "D", "b_i": "1", "w_f": "D", "b_f": "1", "W_o": "HD", "b_o": "H"}
GDN_SHAPES = {"W_k": "HD", "W_q": "HD", "W_v": "HD", "a": "1", "w_alpha": "D",
              "b_alpha": "1", "w_beta": "D", "b_beta": "1"}


def random_params(shapes, D, H, rng, scale=0.5, dtype=numpy.float64):
    """Parameters of the given shapes ("HD", "H", "D", "1"), normal * scale."""
    dims = {"H": H, "D": D, "1": 1}
    return {n: (scale * rng.standard_normal(tuple(dims[c] for c in s if c != "1") or (1,)))
            .astype(dtype) for n, s in shapes.items()}


def random_state(cell, B, H, rng):
    """A random initial state tuple in the kernels' order and shapes."""
    if cell == "mlstm":
        return (rng.standard_normal((B, H, H)), rng.standard_normal((B, H)),
                rng.standard_normal((B, 1)), rng.standard_normal((B, H)))
    return rng.standard_normal((B, H, H)), rng.standard_normal((B, H))


# ---------------------------------------------------------------------------------------
# PyTorch, written from the papers
# ---------------------------------------------------------------------------------------

def torch_mlstm(torch, p, xs, state0, layout="paper"):
    """(hs (T, B, H), [(C, n, m, h) per step]) of one mLSTM head, p and xs torch tensors."""
    C, n, m, h = state0
    H = p["W_q"].shape[0]
    states = []
    for x in xs:
        q = x @ p["W_q"].T + p["b_q"]
        k = (x @ p["W_k"].T + p["b_k"]) / math.sqrt(H)
        v = x @ p["W_v"].T + p["b_v"]
        i_t = (x @ p["w_i"])[:, None] + p["b_i"]                     # (B, 1)
        f_t = (x @ p["w_f"])[:, None] + p["b_f"]
        o = torch.sigmoid(x @ p["W_o"].T + p["b_o"])
        m_new = torch.maximum(f_t + m, i_t)
        ip = torch.exp(i_t - m_new)
        fp = torch.exp(f_t + m - m_new)
        if layout == "paper":                                         # v k^T, C q
            C = fp[:, :, None] * C + ip[:, :, None] * (v[:, :, None] * k[:, None, :])
            num = (C @ q[:, :, None])[:, :, 0]
        else:                                                         # k v^T, q^T C
            C = fp[:, :, None] * C + ip[:, :, None] * (k[:, :, None] * v[:, None, :])
            num = (q[:, None, :] @ C)[:, 0, :]
        n = fp * n + ip * k
        denom = torch.maximum(torch.abs((n * q).sum(-1, keepdim=True)), torch.exp(-m_new))
        h = o * num / denom
        m = m_new
        states.append((C, n, m, h))
    return torch.stack([s[3] for s in states]), states


def torch_gated_deltanet(torch, p, xs, state0):
    """(os (T, B, H), [(S, o) per step]) of the gated delta rule."""
    S, o = state0
    H = p["W_q"].shape[0]
    eye = torch.eye(H, dtype=S.dtype)
    states = []
    for x in xs:
        kr, qr = x @ p["W_k"].T, x @ p["W_q"].T
        k = kr / torch.sqrt((kr * kr).sum(-1, keepdim=True) + L2NORM_EPS)
        q = qr / torch.sqrt((qr * qr).sum(-1, keepdim=True) + L2NORM_EPS)
        v = x @ p["W_v"].T
        alpha = torch.exp(-torch.exp(p["a"]) * torch.nn.functional.softplus(
            (x @ p["w_alpha"])[:, None] + p["b_alpha"]))[:, :, None]            # (B, 1, 1)
        beta = torch.sigmoid((x @ p["w_beta"])[:, None] + p["b_beta"])[:, :, None]
        kkT = k[:, :, None] * k[:, None, :]
        S = alpha * S @ (eye - beta * kkT) + beta * (v[:, :, None] * k[:, None, :])
        o = (S @ q[:, :, None])[:, :, 0]
        states.append((S, o))
    return torch.stack([s[1] for s in states]), states


def torch_grads(torch, run, p, xs, state0, douts, dstate=None):
    """Forward states (numpy) and autograd gradients of L = sum(douts * outs) + sum_s <dstate_s,
    s_T>: (states per step, grads dict, dstate0 tuple, dxs)."""
    tp = {n: torch.tensor(a, requires_grad=True) for n, a in p.items()}
    tx = torch.tensor(xs, requires_grad=True)
    ts = [torch.tensor(a, requires_grad=True) for a in state0]
    outs, states = run(torch, tp, tx, ts)
    loss = (outs * torch.tensor(douts)).sum()
    if dstate is not None:
        loss = loss + sum((s * torch.tensor(d)).sum() for s, d in zip(states[-1], dstate))
    loss.backward()
    zero = lambda a: numpy.zeros_like(a.detach().numpy())            # noqa: E731
    return ([tuple(s.detach().numpy() for s in st) for st in states],
            {n: a.grad.numpy() for n, a in tp.items()},
            tuple(a.grad.numpy() if a.grad is not None else zero(a) for a in ts),
            tx.grad.numpy())


# ---------------------------------------------------------------------------------------
# NumPy mLSTM, forward and BPTT by hand
# ---------------------------------------------------------------------------------------

def _heaviside(a):
    """H(a) with H(0) = 1/2 (ties of max split the gradient in half)."""
    return ((a > 0) + 0.5 * (a == 0)).astype(a.dtype)


def numpy_mlstm(p, xs, state0):
    """Forward of one mLSTM head: (hs (T, B, H), cache). Projections of the whole sequence in
    one GEMM each; the memories C_0..C_T are kept for the backward pass."""
    C0, n0, m0, _ = state0
    T, B, D = xs.shape
    H = p["W_q"].shape[0]
    dt = xs.dtype
    X = xs.reshape(T * B, D)
    W = numpy.concatenate([p["W_q"], p["W_k"], p["W_v"], p["W_o"], p["w_i"][None], p["w_f"][None]])
    bias = numpy.concatenate([p["b_q"], p["b_k"], p["b_v"], p["b_o"], p["b_i"], p["b_f"]])
    P = (X @ W.T + bias).reshape(T, B, 4 * H + 2)
    q, v = P[..., :H], P[..., 2 * H:3 * H]
    k = P[..., H:2 * H] * dt.type(1 / math.sqrt(H))
    o = 1 / (1 + numpy.exp(-P[..., 3 * H:4 * H]))
    it, ft = P[..., 4 * H:4 * H + 1], P[..., 4 * H + 1:]
    C = numpy.empty((T + 1, B, H, H), dt)
    n = numpy.empty((T + 1, B, H), dt)
    m = numpy.empty((T + 1, B, 1), dt)
    C[0], n[0], m[0] = C0, n0, m0
    ip, fp, z, den, ht = (numpy.empty((T, B, 1), dt), numpy.empty((T, B, 1), dt),
                          numpy.empty((T, B, 1), dt), numpy.empty((T, B, 1), dt),
                          numpy.empty((T, B, H), dt))
    for t in range(T):
        m[t + 1] = numpy.maximum(ft[t] + m[t], it[t])
        ip[t] = numpy.exp(it[t] - m[t + 1])
        fp[t] = numpy.exp(ft[t] + m[t] - m[t + 1])
        numpy.multiply(C[t], fp[t][:, :, None], out=C[t + 1])
        C[t + 1] += (ip[t] * v[t])[:, :, None] * k[t][:, None, :]
        n[t + 1] = fp[t] * n[t] + ip[t] * k[t]
        z[t] = (n[t + 1] * q[t]).sum(-1, keepdims=True)
        den[t] = numpy.maximum(numpy.abs(z[t]), numpy.exp(-m[t + 1]))
        ht[t] = (C[t + 1] @ q[t][:, :, None])[:, :, 0] / den[t]
    hs = o * ht
    cache = dict(X=X, q=q, k=k, v=v, o=o, it=it, ft=ft, C=C, n=n, m=m, ip=ip, fp=fp, z=z,
                 den=den, ht=ht)
    return hs, cache


def numpy_mlstm_backward(p, cache, dhs):
    """Full BPTT of :func:`numpy_mlstm` for L = sum(dhs * hs): (grads dict, (dC0, dn0, dm0, dh0))."""
    c = cache
    T, B, H = dhs.shape
    dt = dhs.dtype
    q, k, v, o, C, n, m = c["q"], c["k"], c["v"], c["o"], c["C"], c["n"], c["m"]
    dq, dk, dv = (numpy.empty((T, B, H), dt) for _ in range(3))
    dit, dft = numpy.empty((T, B, 1), dt), numpy.empty((T, B, 1), dt)
    dC = numpy.zeros((B, H, H), dt)
    dn = numpy.zeros((B, H), dt)
    dm = numpy.zeros((B, 1), dt)
    dht = dhs * o
    dob = dhs * c["ht"] * o * (1 - o)
    for t in reversed(range(T)):
        den, z, em = c["den"][t], c["z"][t], numpy.exp(-m[t + 1])
        r = _heaviside(numpy.abs(z) - em)
        s = _heaviside(c["ft"][t] + m[t] - c["it"][t])
        ddenom = -(dht[t] * c["ht"][t]).sum(-1, keepdims=True) / den
        dz = ddenom * r * numpy.sign(z)
        g = dht[t] / den
        dC += g[:, :, None] * q[t][:, None, :]
        dn += dz * q[t]
        dq[t] = (g[:, None, :] @ C[t + 1])[:, 0, :] + dz * n[t + 1]
        dCk = (dC @ k[t][:, :, None])[:, :, 0]
        dCTv = (v[t][:, None, :] @ dC)[:, 0, :]
        ip, fp = c["ip"][t], c["fp"][t]
        dfp = numpy.einsum("bij,bij->b", dC, C[t])[:, None] + (dn * n[t]).sum(-1, keepdims=True)
        dip = (v[t] * dCk).sum(-1, keepdims=True) + (dn * k[t]).sum(-1, keepdims=True)
        dv[t] = ip * dCk
        dk[t] = ip * (dCTv + dn)
        dmt = dm - ddenom * (1 - r) * em - dip * ip - dfp * fp
        dit[t] = dip * ip + dmt * (1 - s)
        dft[t] = dfp * fp + dmt * s
        dm = dfp * fp + dmt * s
        dC *= fp[:, :, None]
        dn *= fp
    G = numpy.concatenate([dq, dk / math.sqrt(H), dv, dob, dit, dft], axis=-1).reshape(T * B, -1)
    dW = G.T @ c["X"]
    db = G.sum(0)
    names = ["q", "k", "v", "o"]
    grads = {f"W_{g}": dW[j * H:(j + 1) * H] for j, g in enumerate(names)}
    grads.update({f"b_{g}": db[j * H:(j + 1) * H] for j, g in enumerate(names)})
    grads.update(w_i=dW[4 * H], b_i=db[4 * H:4 * H + 1], w_f=dW[4 * H + 1], b_f=db[4 * H + 1:])
    return grads, (dC, dn, dm, numpy.zeros((B, H), dt))
