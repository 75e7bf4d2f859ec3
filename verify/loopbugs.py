"""The classic time-loop bugs, computed: BPTT and forward variants with one bug each, built from
the derived kernels' one-step gradients, so that a diagnosis is a measurement, not a guess.

One step of BPTT at step t, for the upstream gradient ``ds_t`` on the new state s_t, is the
derived kernels' ``backward`` with T = 1 (``step_gradients``); the sequence gradient is

    ds_T = dfinal,   dS_t = dhs[t] (on h) + ds_t,   (g_t, dx_t, ds_{t-1}) = step(dS_t)
    grads = sum_t g_t,   dstate0 = ds_0,

which :func:`bptt` computes (``variant=None``; equal to the kernels' full ``backward``, a
test checks it). Each bug of :data:`BACKWARD_BUGS` changes exactly one thing:

* ``no_recurrent_h``: the gradient from step t+1 is not added to h (``dh[:, t]`` alone);
* ``no_carry_c`` (and any state but h): the cell-state gradient is not carried back
  (dS_t has only the final upstream gradient at t = T-1, 0 before);
* ``assign_first`` / ``assign_last``: ``=`` where ``+=`` was needed: the weight gradients are
  one step's contribution only (step 0, the last one a backward loop visits; or step T-1);
* ``no_dstate0``: the initial-state gradient is zero (``dh0`` never computed);
* ``reversed_upstream``: the upstream gradients are taken in reversed time order.

:data:`FORWARD_BUGS`: ``reversed_input`` (the loop runs over ``xs[::-1]``, outputs in loop
order) and ``reversed_output`` (the same, outputs stored back in time order).
"""
from __future__ import annotations

import numpy

__all__ = ["step_reference", "step_gradients", "forward_states", "bptt", "BACKWARD_BUGS", "FORWARD_BUGS",
           "forward_variant", "BUG_TEXT"]

BUG_TEXT = {
    "no_recurrent_h": "the gradient from step t+1 is not added to dh (dh[:, t] used alone)",
    "no_carry_c": "the cell-state gradient is not carried back to the previous step",
    "assign_first": "'=' where '+=' was needed: the weight gradients hold only one step's "
                    "contribution (step 0, the last one the backward loop visits)",
    "assign_last": "'=' where '+=' was needed: the weight gradients hold only one step's "
                   "contribution (step T-1)",
    "no_dstate0": "the initial-state gradient (dh0) is missing: all zero",
    "reversed_upstream": "time reversed: the upstream gradients are used in reversed order",
    "reversed_input": "time reversed: the loop runs over the inputs from the last step to the first",
    "reversed_output": "time reversed: the loop runs backwards over the inputs (outputs stored "
                       "in time order)",
}

BACKWARD_BUGS = ("no_recurrent_h", "no_carry_c", "assign_first", "assign_last", "no_dstate0",
                 "reversed_upstream")
FORWARD_BUGS = ("reversed_input", "reversed_output")


def step_reference(k, params, x, state, dstate):
    """One derived step and its BPTT step, from one forward and one backward with T = 1:
    ``(new_state, grads, dx, dstate_prev)`` for upstream ``dstate`` on the new state
    (``k``: the kernels of ``derive.kernels``; x (B, D), states (B, H)). The new state is
    read from the forward's cache (``cache["S"][j][1]``, as the kernels' ``step`` reads it)."""
    hi = list(k.STATE).index("h")
    rest = tuple(numpy.zeros_like(d) if j == hi else d for j, d in enumerate(dstate))
    _, cache = k.forward(params, numpy.asarray(x)[None], tuple(state))
    new = tuple(numpy.array(s[1], copy=True) for s in cache["S"])
    grads, dprev, dxs = k.backward(params, cache, numpy.asarray(dstate[hi])[None], rest,
                                   return_dxs=True)
    return new, dict(grads), dxs[0], tuple(dprev)


def step_gradients(k, params, x, state, dstate):
    """One derived BPTT step: ``(grads, dx, dstate_prev)`` (:func:`step_reference`)."""
    return step_reference(k, params, x, state, dstate)[1:]


def forward_states(k, params, xs, state0):
    """Every state s_0 .. s_T of a sequence (a list of tuples), by the derived ``step``."""
    out = [tuple(state0)]
    for t in range(len(xs)):
        out.append(tuple(k.step(params, xs[t], out[-1])))
    return out


def forward_variant(k, params, xs, state0, bug):
    """``hs`` (T, B, H) computed with one forward bug of :data:`FORWARD_BUGS`."""
    hi = list(k.STATE).index("h")
    hs = numpy.stack([s[hi] for s in forward_states(k, params, xs[::-1], state0)[1:]])
    return hs if bug == "reversed_input" else hs[::-1]


def bptt(k, params, xs, states, dhs, dfinal=None, variant=None):
    """``(grads, dxs, dstate0)`` of the sequence, with the one bug ``variant`` (None: none).
    ``states`` from :func:`forward_states`; ``dhs`` (T, B, H); ``dfinal`` a tuple on s_T."""
    names = list(k.STATE)
    hi = names.index("h")
    T = len(xs)
    dhs = numpy.asarray(dhs)[::-1] if variant == "reversed_upstream" else numpy.asarray(dhs)
    zero = tuple(numpy.zeros_like(s) for s in states[-1])
    carry = tuple(dfinal) if dfinal is not None else zero
    grads, dxs = None, [None] * T
    for t in reversed(range(T)):
        ds = list(carry)
        if variant == "no_recurrent_h" and t < T - 1:
            ds[hi] = numpy.zeros_like(ds[hi])
        if variant == "no_carry_c" and t < T - 1:
            ds = [d if j == hi else numpy.zeros_like(d) for j, d in enumerate(ds)]
        ds[hi] = ds[hi] + dhs[t]
        g, dxs[t], carry = step_gradients(k, params, xs[t], states[t], tuple(ds))
        keep = (variant == "assign_first" and t == 0) or (variant == "assign_last" and t == T - 1)
        if grads is None:
            grads = {n: (v if variant not in ("assign_first", "assign_last") or keep
                         else numpy.zeros_like(v)) for n, v in g.items()}
        elif variant in ("assign_first", "assign_last"):
            if keep:
                grads = dict(g)
        else:
            grads = {n: grads[n] + g[n] for n in grads}
    dstate0 = zero if variant == "no_dstate0" else carry
    return grads, numpy.stack(dxs), tuple(dstate0)
