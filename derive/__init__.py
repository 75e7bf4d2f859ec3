"""rnn-calculus: RNN, LSTM and GRU cells defined once as SymPy equations, with their
Jacobians, backward passes, LaTeX and NumPy kernels derived from that one definition.

>>> import derive
>>> "lstm_peephole" in derive.cells()
True
>>> c = derive.cell("rnn_sigmoid")
>>> c.jacobian("h", "h")          # d h_t / d h_{t-1}
DiagMatrix(SigmoidPrime(a))*W_hh
"""
from derive.api import latex  # also imports the printers, which register the display hooks
from derive.core.cell import Cell, CellError
from derive.codegen.runtime import kernels
from derive.spec.registry import UnknownCellError, cell, cells
from derive.spec.tables import SpecError, load_spec as cell_from_spec

__all__ = ["Cell", "CellError", "SpecError", "UnknownCellError", "cell", "cells",
           "cell_from_spec", "kernels", "latex"]
