"""``real_zeros`` (the critical points behind gamma) and ``limit_at`` against SymPy's own
``solve`` (with its result check) and ``limit``; gamma no longer imports ``sympy.physics``."""
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

from derive.core import primitives  # noqa: F401 - registers every primitive
from derive.core.elementwise import Elementwise, limit_at, real_zeros

ROOT = Path(__file__).resolve().parents[2]
X = sympy.Symbol("x", real=True)


def _primitives():
    out, todo = [], list(Elementwise.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.derivative is not None and not cls.is_derivative:
            out.append(cls)
    return sorted(set(out), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _primitives(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("order", [0, 1, 2])
def test_real_zeros_are_the_checked_roots_of_solve(cls, order):
    """For f', f'' and f''' of every primitive: the same number of roots as
    ``sympy.solve(g, x)`` for a real x (spurious zoo and I*pi dropped), equal values in
    solve's order, atoms identical."""
    g = sympy.diff(cls.derivative.scalar(X), X, order) if order else cls.derivative.scalar(X)
    try:
        want = sympy.solve(g, X)
    except NotImplementedError:
        with pytest.raises(NotImplementedError):
            real_zeros(g, X)
        return
    got = real_zeros(g, X)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert sympy.simplify(a - b) == 0
        if not b.args:
            assert a == b


@pytest.mark.parametrize("end", [sympy.oo, -sympy.oo])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_prime", "tanh_prime"])
def test_limit_at_is_sympys_limit(name, end):
    f = {"sigmoid": primitives.Sigmoid.scalar, "sigmoid_prime": primitives.SigmoidPrime.scalar,
         "tanh_prime": primitives.TanhPrime.scalar}[name](X)
    assert limit_at(f, X, end) == sympy.limit(f, X, end)


def test_gamma_does_not_import_sympy_physics():
    """solve's result check and simplify import sympy.physics.units (~0.2 s); the gammas of
    the classic activations are found without it, with the same values."""
    code = ("import sys; from derive.core.primitives import Sigmoid, Tanh, Relu; "
            "print(Sigmoid.gamma(), Tanh.gamma(), Relu.gamma(), "
            "'sympy.physics.units' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    assert out == ["1/4", "1", "1", "False"]
