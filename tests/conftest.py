import os

import numpy
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


#: Hidden sizes of the explicit SymPy expansions (verify.explicit) in the oracle tests. The
#: cells whose n = 3, 4 expansions take minutes (sLSTM: exp, max and a division over four
#: states; LRU: nested exp, cos, sin, sqrt of parameters) stop at n = 2, which already has every
#: kind of entry (diagonal and off-diagonal, every coupling between states); so do the
#: layer-norm and matrix-state cells (n = 2: a 2 x 2 memory, a mean over two entries).
EXPLICIT_SIZES = (1, 2, 3, 4)
HEAVY_EXPLICIT = {"slstm": (1, 2), "lru": (1, 2), "lnlstm": (1, 2), "mlstm": (1, 2),
                  "gated_deltanet": (1, 2)}


#: The whole backward step of the layer-norm and matrix-state cells at n = 2 takes SymPy many
#: minutes (square roots and their powers in every adjoint: the comparison falls through to
#: ``cancel``); the generic backward oracle runs them at n = 1 (where every layer norm is
#: degenerate, u - mean(u) = 0), and their n = 2 backward is checked output by output in
#: tests/core/test_reductions.py (test_lnlstm_vjps_match_sympy_at_n2, the slowest outputs with
#: RNN_CALCULUS_SLOW_SYMPY=1) and tests/kernels/test_matrix_state_cells.py (mLSTM, Gated
#: DeltaNet).
HEAVY_BACKWARD = {"lnlstm": (1,), "mlstm": (1,), "gated_deltanet": (1,)}
#: Sizes of the Jacobians with respect to x and the vector parameters (n = 1, 3 for the others).
VECTOR_WRT_SIZES = {"lnlstm": (1, 2), "mlstm": (1,), "gated_deltanet": (1,)}


def explicit_sizes(name, backward=False):
    if backward and name in HEAVY_BACKWARD:
        return HEAVY_BACKWARD[name]
    return HEAVY_EXPLICIT.get(name, EXPLICIT_SIZES)


def state_shapes(kern, batch, hidden):
    """The (B, ...) shape of each state of a kernels module, in STATE order: (B, H), (B, 1)
    for a scalar state, (B, H, H) for a matrix state (its STATE_SHAPES)."""
    return [(batch,) + tuple(hidden if d == "H" else 1 for d in kern.STATE_SHAPES[s])
            for s in kern.STATE]


def states_like(kern, batch, hidden, draw):
    """One array per state, ``draw(shape)`` of its shape (see :func:`state_shapes`)."""
    return tuple(draw(shape) for shape in state_shapes(kern, batch, hidden))


def flat_states(states):
    """The states side by side as (B, S): a matrix state row-major (the step Jacobian's order)."""
    return numpy.concatenate([numpy.asarray(a).reshape(len(a), -1) for a in states], axis=1)


def split_states(a, shapes):
    """The inverse of :func:`flat_states` for states of the given shapes."""
    ends = numpy.cumsum([0] + [int(numpy.prod(s[1:])) for s in shapes])
    return tuple(a[:, ends[i]:ends[i + 1]].reshape((a.shape[0],) + tuple(s[1:]))
                 for i, s in enumerate(shapes))


def sympy_budget() -> float:
    """Seconds one SymPy comparison of a backward output may take before it is left out (the
    outputs measured slower are listed beside their tests): RNN_CALCULUS_SLOW_SYMPY=1 runs them
    all; RNN_CALCULUS_SYMPY_BUDGET=N those measured at N s or less (.ci/run sets 120: every one
    but Gated DeltaNet's delta x); by default none of the listed ones."""
    import os
    if os.environ.get("RNN_CALCULUS_SLOW_SYMPY") == "1":
        return float("inf")
    return float(os.environ.get("RNN_CALCULUS_SYMPY_BUDGET", "0"))
