"""What a cell spec may hold: size limits (each reported by name when exceeded), the tables
and keys of a spec file, and the names a cell or a symbol may not use.
"""
from __future__ import annotations

import keyword
import re

from derive.core.binary import BINARY_FUNCTIONS
from derive.spec.reductions import REDUCTIONS
from derive.core.primitives import ALL_PRIMITIVES

# -- limits (every one is reported by name when exceeded) -----------------------------------
MAX_SPEC_BYTES = 256 * 1024      # whole file
MAX_TEXT_CHARS = 2000            # title, reference, description
MAX_LATEX_CHARS = 100            # one [latex] entry
MAX_STATES = 8
MAX_PARAMS = 64
MAX_EQUATIONS = 64               # step equations plus readout equations
MAX_DERIVATION_SIZE = 2000       # see derivation_size(); the largest built-in cell is 258

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z", re.ASCII)
TABLES = ("cell", "params", "state_shapes", "equations", "readout", "readout_params", "latex", "torch")
CELL_KEYS = ("name", "title", "reference", "description", "states", "holdable")
#: The public top-level names of a generated kernel module and of ``kernels/__init__.py``
#: (a test checks this against the generator's output: derive.codegen.source.module_names).
KERNEL_API = frozenset({"CELL", "CELLS", "OUTPUT", "PARAMS", "STATE", "STATE_SHAPES", "TORCH", "backward",
                        "forward", "init_params", "params_from_torch", "params_to_torch", "step",
                        "step_jacobian", "step_jvp", "step_vjp", "JACOBIAN_LIMIT_BYTES",
                        "SCAN_REFUSAL", "HOLDABLE"})
#: Names a cell may not use: the input, keywords of generated code (``type``: a soft keyword
#: from 3.12), the generated modules' API, module names used by
#: generated kernels, and the spec-language and derivative function names.
RESERVED = frozenset({"x", "np", "numpy", "math", "sympy", "torch", "derive", "type"}
                     | KERNEL_API
                     | set(keyword.kwlist) | set(keyword.softkwlist)
                     | {cls.name for cls in ALL_PRIMITIVES}
                     | {cls.numpy for cls in ALL_PRIMITIVES}      # absolute: abs's NumPy name
                     | {n for cls in BINARY_FUNCTIONS.values() for n in (cls.name, cls.numpy)}
                     | set(REDUCTIONS)                  # sum, mean, dot, norm, outer
                     | {"outer_vec", "mat_vec", "mat_t_vec"})   # the matrix-state NumPy helpers
RESERVED_PREFIXES = ("delta_", "Delta_")   # adjoint names of the backward step
