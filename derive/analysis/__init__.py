"""Numerical analyses run on the generated kernels."""
