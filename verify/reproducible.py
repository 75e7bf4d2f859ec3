"""Hypothesis runs that depend on the seed only, not on what else the process imported.

Hypothesis (6.131 and later) mixes into its generation the numeric and string literals of
every *local* module in ``sys.modules`` (code outside site-packages and the standard
library: your scripts, your tests, this project) and caches that pool per process. Two
scripts with the same ``@seed`` therefore draw different cases as soon as they import
different local modules, or as soon as a local file is edited, and the number of cases
until the first failure varies (40 vs 91 measured). The database, the profile's
``derandomize`` and the global random state are not involved when a seed is given.

``local_constants_off()`` makes a run draw from Hypothesis's built-in constants only, by
substituting an empty local pool (and a private cache of the allowed constants, so that other
Hypothesis runs in the process keep theirs) for the duration of the ``with`` block. It uses
Hypothesis internals; where they are missing (another version) it does nothing and
``available()`` is False. Not thread-safe: other threads running Hypothesis inside the block
see the empty pool too.
"""
from __future__ import annotations

import contextlib

__all__ = ["local_constants_off", "available"]

try:  # Hypothesis internals, present since 6.131
    from hypothesis.internal.conjecture import providers as _providers
    _EMPTY = _providers.Constants()
    # the allowed constants per choice kind, computed with the empty pool
    _CACHE = type(_providers.CONSTANTS_CACHE)(1024)
    _ok = hasattr(_providers, "_get_local_constants")
except Exception:  # noqa: BLE001 - older or newer Hypothesis: nothing to switch off
    _providers, _EMPTY, _CACHE, _ok = None, None, None, False


def available() -> bool:
    """True when this Hypothesis has a local-constant pool that can be switched off."""
    return _ok


@contextlib.contextmanager
def local_constants_off():
    """Within the block, Hypothesis draws no constants from local modules' source."""
    if not _ok:
        yield
        return
    saved = _providers._get_local_constants, _providers.CONSTANTS_CACHE
    _providers._get_local_constants = lambda: _EMPTY
    _providers.CONSTANTS_CACHE = _CACHE
    try:
        yield
    finally:
        _providers._get_local_constants, _providers.CONSTANTS_CACHE = saved
