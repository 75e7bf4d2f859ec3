import os

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
#: kind of entry (diagonal and off-diagonal, every coupling between states).
EXPLICIT_SIZES = (1, 2, 3, 4)
HEAVY_EXPLICIT = {"slstm": (1, 2), "lru": (1, 2)}


def explicit_sizes(name):
    return HEAVY_EXPLICIT.get(name, EXPLICIT_SIZES)
