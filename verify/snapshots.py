"""Did a user's function change its arguments in place? One snapshot / compare for every call.

``take(args)`` copies ``{label: object}`` deeply: NumPy arrays and scalars by value
(values, shape, dtype), dicts by key, tuples and lists by position; other objects are kept
and compared with ``==``. ``changes(snapshot, args)`` compares the same objects after the
call and names every difference by its path from the label:

* ``params['W_xh']``: an entry whose values, shape or dtype changed;
* ``params (key 'extra' added)`` / ``params (key 'W_xh' removed)``: a dict gained or lost a key;
* ``state[1]`` / ``grads (length 2 -> 3)``: a list entry, or a list that changed length.

Containers are compared by name (dict keys), never by position in a flattened list, so a
dict that gains a key does not shift the blame onto the next argument.
"""
from __future__ import annotations

import numpy

__all__ = ["take", "changes"]


_OTHER = "other"


def _snap(obj):
    if isinstance(obj, dict):
        return dict, {k: _snap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj), [_snap(v) for v in obj]
    if isinstance(obj, (numpy.ndarray, numpy.generic)):
        return numpy.ndarray, numpy.array(obj, copy=True)
    return _OTHER, obj


def take(args: dict) -> dict:
    """A deep copy of every argument, keyed by its label."""
    return {label: _snap(obj) for label, obj in args.items()}


def _same_array(a, b):
    if not isinstance(b, (numpy.ndarray, numpy.generic)):
        return False
    b = numpy.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    try:
        return bool(numpy.array_equal(a, b, equal_nan=True))
    except TypeError:                                   # dtypes without NaN
        return bool(numpy.array_equal(a, b))


def _diff(label, snap, obj, out):
    kind, before = snap
    if kind is dict:
        if not isinstance(obj, dict):
            out.append(f"{label} (now a {type(obj).__name__})")
            return
        out.extend(f"{label} (key {k!r} removed)" for k in before if k not in obj)
        out.extend(f"{label} (key {k!r} added)" for k in obj if k not in before)
        for k, s in before.items():
            if k in obj:
                _diff(f"{label}[{k!r}]", s, obj[k], out)
    elif kind in (list, tuple):
        if not isinstance(obj, (list, tuple)) or len(obj) != len(before):
            now = len(obj) if isinstance(obj, (list, tuple)) else type(obj).__name__
            out.append(f"{label} (length {len(before)} -> {now})")
            return
        for i, (s, v) in enumerate(zip(before, obj)):
            _diff(f"{label}[{i}]", s, v, out)
    elif kind is numpy.ndarray:
        if not _same_array(before, obj):
            out.append(label)
    else:
        try:
            same = before is obj or bool(before == obj)
        except Exception:  # noqa: BLE001 - an object whose == fails counts as unchanged
            same = True
        if not same:
            out.append(label)


def changes(snapshot: dict, args: dict) -> list:
    """Labels of everything in ``args`` that differs from ``snapshot`` (see module docstring)."""
    out = []
    for label, snap in snapshot.items():
        _diff(label, snap, args[label], out)
    return out
