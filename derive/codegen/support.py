"""Input checking, parameter initialisation and PyTorch weight packing for the NumPy kernels.

Structure only, no cell math: every function takes the cell's ``PARAMS`` / ``STATE`` /
``TORCH`` tables as arguments. The kernel generator copies this source verbatim into every
generated module (after the primitives), so a generated module imports nothing but NumPy;
:mod:`derive.codegen.runtime` uses the same functions directly.
"""
import numpy

_FLOATS = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def _shape_text(spec, dims):
    sym = "(" + ", ".join(spec) + ("," if len(spec) == 1 else "") + ")"
    if all(d in dims for d in spec):
        num = tuple(dims[d] for d in spec)
        return f"{sym} = {num}"
    return sym


def _as_float_array(name, value, dtype=None):
    """``value`` as an ndarray of a float dtype (no copy when it already is one)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):      # a torch tensor
        value = value.detach().cpu().numpy()
    arr = numpy.asarray(value)
    if arr.dtype not in _FLOATS:
        raise ValueError(f"{name}: dtype must be float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name}: dtype {arr.dtype} does not match the parameters' dtype {dtype}")
    return arr


def _check_finite(name, arr):
    if not numpy.isfinite(arr).all():
        raise ValueError(f"{name}: contains non-finite values (nan or inf)")


def _check_params(params, PARAMS):
    """Validate a parameter dict: exactly the names of ``PARAMS``, shapes consistent with one
    H and one D, one float dtype, finite values. Returns (arrays, dims, dtype)."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of arrays keyed {list(PARAMS)}, got "
                         f"{type(params).__name__}")
    for name, spec in PARAMS.items():
        if name not in params:
            raise ValueError(f"params: missing parameter {name!r} (expected shape "
                             f"{_shape_text(spec, {})})")
    for name in params:
        if name not in PARAMS:
            raise ValueError(f"params: unexpected parameter {name!r}; expected exactly "
                             f"{list(PARAMS)}")
    arrays, dims, dtype, first = {}, {"1": 1}, None, None
    for name, spec in PARAMS.items():
        arr = _as_float_array(f"parameter {name!r}", params[name], dtype)
        if dtype is None:
            dtype, first = arr.dtype, name
        ok = arr.ndim == len(spec) and all(dims.get(d, n) == n for d, n in zip(spec, arr.shape))
        if not ok or 0 in arr.shape:
            raise ValueError(f"parameter {name!r}: expected shape {_shape_text(spec, dims)}, "
                             f"got {arr.shape}")
        for d, n in zip(spec, arr.shape):
            dims.setdefault(d, n)
        _check_finite(f"parameter {name!r}", arr)
        arrays[name] = arr
    return arrays, dims, dtype


def _shape_text_of(shape):
    """``(B=2, H)`` for a tuple of (label, size) pairs; size None means any."""
    return "(" + ", ".join(f"{lab}={n}" if n is not None else lab for lab, n in shape) + ")"


def _has_shape(arr, shape):
    """Whether ``arr`` has exactly the (label, size) ``shape`` (size None: any)."""
    return arr.ndim == len(shape) and all(n is None or n == m for (_, n), m in zip(shape, arr.shape))


def _check_array(name, value, shape, dtype, *, finite=True):
    """``value`` as an array of exactly ``shape`` (a tuple of (label, size); size None means
    any) and ``dtype``; a ValueError naming ``name`` otherwise."""
    arr = _as_float_array(name, value, dtype)
    if not _has_shape(arr, shape):
        raise ValueError(f"{name}: expected shape {_shape_text_of(shape)}, got {arr.shape}")
    if finite:
        _check_finite(name, arr)
    return arr


def _state_dims(shape, hidden):
    """The (label, size) pairs of one state's batch row: ("H",) is (H,), ("1",) a scalar (1,),
    ("H", "H") a matrix (H, H)."""
    return tuple((d, hidden if d == "H" else 1) for d in shape)


def _check_state(name, state, STATE, batch, hidden, dtype, SHAPES=None):
    """A state: a tuple (or list) of arrays ordered like ``STATE``, each (B, H) or as
    ``SHAPES`` says ((B, 1) for a scalar, (B, H, H) for a matrix, returned flat as (B, H*H),
    row-major: the kernels' layout)."""
    if isinstance(state, numpy.ndarray) or not isinstance(state, (tuple, list)):
        raise ValueError(f"{name} must be a tuple of {len(STATE)} arrays ordered like STATE = "
                         f"{STATE}, got {type(state).__name__}")
    if len(state) != len(STATE):
        raise ValueError(f"{name} must have {len(STATE)} arrays ordered like STATE = {STATE}, "
                         f"got {len(state)}")
    out = []
    for i, (s, a) in enumerate(zip(STATE, state)):
        shape = (SHAPES or {}).get(s, ("H",))
        arr = _check_array(f"{name}[{i}] ({s})", a, (("B", batch),) + _state_dims(shape, hidden),
                           dtype)
        out.append(arr.reshape(arr.shape[0], -1) if len(shape) == 2 else arr)
    return tuple(out)


def _public_state(STATE, SHAPES, states):
    """States in the kernels' layout as the API gives them: a matrix state (B, H*H) as
    (B, H, H), the others unchanged."""
    return tuple(a.reshape(a.shape[0], round(a.shape[1] ** 0.5), -1)
                 if len(SHAPES.get(s, ("H",))) == 2 else a for s, a in zip(STATE, states))


def _cache_array(name, value, shape, dtype):
    """A cache entry: an ndarray of exactly ``shape`` ((label, size) pairs) and ``dtype``."""
    if not isinstance(value, numpy.ndarray) or value.dtype != dtype or not _has_shape(value, shape):
        got = (f"shape {value.shape} {value.dtype}" if isinstance(value, numpy.ndarray)
               else type(value).__name__)
        raise ValueError(f"cache: {name} must be an array {_shape_text_of(shape)} of {dtype}, "
                         f"got {got}")
    return value


def _check_cache(cache, CELL, STATE, KEPT, dims, dtype, SHAPES=None):
    """The cache of this cell's ``forward``, checked key by key against the parameters'
    sizes and dtype (``KEPT``: stored value -> its dims, "T" and "B" for the sequence axes).
    Returns (T, B)."""
    if not isinstance(cache, dict) or cache.get("cell") != CELL:
        got = f"cell {cache.get('cell')!r}" if isinstance(cache, dict) else type(cache).__name__
        raise ValueError(f"cache: expected the cache returned by this cell's forward ({CELL!r}), "
                         f"got {got}")
    for key, what in (("xs", "the inputs"), ("S", f"the states {STATE}"), ("V", "the kept values")):
        if key not in cache:
            raise ValueError(f"cache: missing key {key!r} ({what}); pass the cache forward returned")
    H, D = dims["H"], dims.get("D")
    xs = _cache_array("'xs'", cache["xs"], (("T", None), ("B", None), ("D", D)), dtype)
    T, B = xs.shape[:2]
    S = cache["S"]
    if not isinstance(S, (tuple, list)) or len(S) != len(STATE):
        got = f"{len(S)} arrays" if isinstance(S, (tuple, list)) else type(S).__name__
        raise ValueError(f"cache: 'S' must be a tuple of {len(STATE)} arrays ordered like "
                         f"STATE = {STATE}, got {got}")
    for i, s in enumerate(S):
        width = numpy.prod([n for _, n in _state_dims((SHAPES or {}).get(STATE[i], ("H",)), H)])
        _cache_array(f"'S'[{i}] ({STATE[i]})", s, (("T+1", T + 1), ("B", B), ("H", int(width))),
                     dtype)
    V = cache["V"]
    if not isinstance(V, dict) or sorted(V) != sorted(KEPT):
        raise ValueError(f"cache: 'V' must be a dict with the keys {sorted(KEPT)}, got "
                         + (f"keys {sorted(V, key=str)}" if isinstance(V, dict) else type(V).__name__))
    sizes = {"T": T, "B": B, "H": H, "D": D}
    for name, spec in KEPT.items():
        _cache_array(f"'V'[{name!r}]", V[name], tuple((d, sizes.get(d)) for d in spec), dtype)
    return T, B


def _zero_state(STATE, batch, hidden, dtype, SHAPES=None):
    """Zero states in the kernels' layout ((B, H), (B, 1), a matrix flat (B, H*H))."""
    return tuple(numpy.zeros((batch, int(numpy.prod([n for _, n in _state_dims(
        (SHAPES or {}).get(s, ("H",)), hidden)]))), dtype) for s in STATE)


def _init_params(PARAMS, input_size, hidden_size, rng=None, dtype=numpy.float64):
    """Every parameter uniform in [-1/sqrt(H), 1/sqrt(H)] (PyTorch's RNN/LSTM initialisation)."""
    for label, n in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
            raise ValueError(f"{label} must be a positive integer, got {n!r}")
    dtype = numpy.dtype(dtype)
    if dtype not in _FLOATS:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if rng is None or isinstance(rng, (int, numpy.integer)):
        rng = numpy.random.default_rng(rng)
    if not isinstance(rng, numpy.random.Generator):
        raise ValueError(f"rng must be None, an int seed or a numpy.random.Generator, got "
                         f"{type(rng).__name__}")
    dims = {"H": int(hidden_size), "D": int(input_size), "1": 1}      # "1": a scalar
    bound = 1.0 / numpy.sqrt(dims["H"])
    return {name: rng.uniform(-bound, bound, tuple(dims[d] for d in spec)).astype(dtype)
            for name, spec in PARAMS.items()}


def _params_from_torch(TORCH, PARAMS, state_dict):
    """Our parameters from a PyTorch single-layer state dict (tensors or arrays). Each packed
    tensor stacks the listed parameters' rows in order; a parameter listed under several
    tensors (PyTorch's two biases) is their sum."""
    keys = [k for k in TORCH if k not in ("module", "nonlinearity")]
    if not hasattr(state_dict, "keys"):
        raise ValueError(f"state_dict must be a mapping with keys {keys}")
    for k in keys:
        if k not in state_dict:
            raise ValueError(f"state_dict: missing {k!r}; expected keys {keys}")
    for k in state_dict.keys():
        if k not in keys:
            raise ValueError(f"state_dict: unexpected key {k!r}; expected keys {keys} "
                             f"(one layer, unidirectional, no projection)")
    out, dtype = {}, None
    for k in keys:
        arr = _as_float_array(f"state_dict[{k!r}]", state_dict[k], dtype)
        dtype = arr.dtype
        names = TORCH[k]
        if arr.ndim not in (1, 2) or arr.shape[0] % len(names):
            raise ValueError(f"state_dict[{k!r}]: expected {len(names)} stacked blocks of H rows, "
                             f"got shape {arr.shape}")
        rows = arr.shape[0] // len(names)
        for j, name in enumerate(names):
            block = arr[j * rows:(j + 1) * rows]
            out[name] = out[name] + block if name in out else numpy.array(block, copy=True)
    missing = [n for n in PARAMS if n not in out]
    if missing:
        raise ValueError(f"the [torch] table does not give parameter {missing[0]!r}")
    params = {n: numpy.ascontiguousarray(out[n]) for n in PARAMS}
    _check_params(params, PARAMS)
    return params


def _params_to_torch(TORCH, PARAMS, params):
    """PyTorch state-dict arrays from our parameters. A parameter PyTorch splits over two
    tensors (the two biases) goes whole into the first tensor listing it; the others get
    zeros there. Returns NumPy arrays (``torch.from_numpy`` them to load)."""
    arrays, dims, dtype = _check_params(params, PARAMS)
    out, placed = {}, set()
    for k in TORCH:
        if k in ("module", "nonlinearity"):
            continue
        blocks = []
        for name in TORCH[k]:
            blocks.append(arrays[name] if name not in placed else numpy.zeros_like(arrays[name]))
            placed.add(name)
        out[k] = numpy.concatenate(blocks, axis=0)
    return out
