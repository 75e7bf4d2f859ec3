"""Parameter conversion to and from PyTorch, copied verbatim into the generated module of
a cell with a ``[torch]`` table (``{module}`` in a docstring becomes that table's module name,
the one substitution: the generated module's TORCH constant holds the rest)."""
from derive.codegen.support import _params_from_torch, _params_to_torch


def params_from_torch(state_dict):
    """Parameters from a one-layer torch.nn.{module} state dict (tensors or arrays); a
    parameter PyTorch keeps as two biases is their sum."""
    return _params_from_torch(TORCH, PARAMS, state_dict)


def params_to_torch(params):
    """weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 as NumPy arrays. A parameter that
    PyTorch splits over both biases goes whole into bias_ih_l0; bias_hh_l0 gets zeros there."""
    return _params_to_torch(TORCH, PARAMS, params)
