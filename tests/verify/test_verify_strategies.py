"""verify.strategies: shapes from the cell definitions, scale and spectral-norm control."""
import numpy
import pytest
from hypothesis import given, strategies as st

import derive
from verify import strategies as vst

CELLS = derive.cells()


@pytest.mark.parametrize("name", CELLS)
def test_param_shapes_follow_the_cell(name):
    shapes = vst.param_shapes(name)
    assert list(shapes) == list(derive.cell(name).params)
    assert all(s in (("H",), ("H", "D"), ("H", "H"), ("D",), ("1",)) for s in shapes.values())


@given(st.data())
def test_step_cases_have_consistent_shapes(data):
    name = data.draw(st.sampled_from(CELLS))
    case = data.draw(vst.step_cases(name, dtype=numpy.float32, scale=0.5))
    d = case.dims
    assert case.x.shape == (d.batch, d.input_size) and case.x.dtype == numpy.float32
    assert len(case.state) == len(derive.cell(name).states)
    for n, shape in vst.param_shapes(name).items():
        assert case.params[n].shape == vst.resolve(shape, d.hidden_size, d.input_size)
        assert numpy.all(numpy.abs(case.params[n]) <= 0.5)


@given(vst.matrices_with_spectral_norm(st.integers(1, 5), norm=st.floats(0.0, 8.0)))
def test_spectral_norm_is_the_drawn_one(m):
    assert m.shape[0] == m.shape[1]


@given(st.integers(1, 5), st.floats(0.0, 8.0), st.data())
def test_spectral_norm_control(n, norm, data):
    m = data.draw(vst.matrices_with_spectral_norm(n, norm=norm))
    assert numpy.linalg.norm(m, 2) == pytest.approx(norm, rel=1e-9, abs=1e-12)


@given(vst.sequence_cases("lstm", recurrent_norm=0.5, steps=st.integers(2, 3)))
def test_recurrent_norm_applies_to_every_recurrent_matrix(case):
    for name in vst.recurrent_params("lstm"):
        assert numpy.linalg.norm(case.params[name], 2) == pytest.approx(0.5, rel=1e-9)
    assert case.xs.shape[0] in (2, 3)
