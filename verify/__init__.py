"""rnn-calculus verification: property suites, gradient checking, conformance checking of
anyone's RNN/LSTM implementation, and the claims report on the seed note.

* :mod:`verify.strategies`: Hypothesis strategies for every cell (sizes, parameters with
  controlled scale and ||W_hh||_2, inputs, states);
* :mod:`verify.properties`: the properties, one function each (sigma' and tanh' bounds exactly
  and in floating point, gates in (0, 1), Jacobian norm bounds, the LSTM direct path, derived
  Jacobians and BPTT against finite differences);
* :func:`verify.gradcheck.gradcheck`: central differences for any forward/backward pair;
* :func:`check_cell`: conformance of a user's step forward/backward, through a layout
  adapter (:mod:`verify.layouts`: seed names, PyTorch packed, CS231n packed);
* :func:`check_sequence`: the same for whole-sequence forward / BPTT code, with the
  classic time-loop bugs measured and named (:mod:`verify.loopbugs`);
* :func:`check_loss`: a function returning its own loss and gradients (``lossFun``)
  against central differences of that loss;
* :func:`resolve_cell`: how every cell argument is read (a name, a ``derive.Cell`` or a
  ``.toml`` spec path);
* :mod:`verify.claims` and ``python -m verify``: every claim with a verdict.
"""
from .cellarg import resolve_cell
from .conformance import ConformanceResult, Mismatch, check_cell
from .gradcheck import gradcheck, gradcheck_kernel
from .layouts import CS231nLayout, SeedLayout, TorchLayout
from .sequence import SequenceResult, check_sequence
from .lossfun import check_loss
from .objects import ObjectLayout
from .packed import PackedLayout, keras_layout, mirror_gru_layout, onnx_layout

__all__ = ["check_cell", "ConformanceResult", "Mismatch", "gradcheck", "gradcheck_kernel",
           "SeedLayout", "TorchLayout", "CS231nLayout", "resolve_cell",
           "check_sequence", "SequenceResult", "check_loss",
           "PackedLayout", "onnx_layout", "keras_layout", "mirror_gru_layout",
           "ObjectLayout"]
