"""Learning-rate schedules: values at and around every boundary."""

import numpy as np
import pytest

from cnnzoo.config import apply_overrides, default_config
from cnnzoo.training import (
    make_schedule,
    parse_ratio,
    piecewise_by_ratio,
    piecewise_constant,
    ratio_boundaries,
    steps_from_epochs,
    with_warmup,
)


def values(schedule, steps):
    return [float(schedule(s)) for s in steps]


def test_he_et_al_piecewise():
    """0.1, divided by 10 at 32k and 48k iterations (He et al. 2016, §4.2)."""
    lr = piecewise_constant(0.1, [32_000, 48_000])
    np.testing.assert_allclose(values(lr, [0, 31_999, 32_000, 47_999, 48_000, 63_999]),
                               [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


@pytest.mark.parametrize('ratio,total,boundaries', [
    ('2:1:1', 64_000, [32_000, 48_000]),  # He et al.
    ('5:3:2', 1000, [500, 800]),
    ('5:4:1', 1000, [500, 900]),
    ('1', 100, []),
])
def test_ratio_boundaries(ratio, total, boundaries):
    assert ratio_boundaries(ratio, total) == boundaries


def test_ratio_values_at_every_boundary():
    lr = piecewise_by_ratio(0.1, '5:3:2', 1000)
    np.testing.assert_allclose(values(lr, [0, 499, 500, 799, 800, 999]),
                               [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


@pytest.mark.parametrize('bad', ['', '5:x', '5:-1', '0:1', 'nan:1', '5::2'])
def test_bad_ratio_is_one_line_error(bad):
    with pytest.raises(ValueError, match='ratio'):
        parse_ratio(bad)


def test_bad_boundaries():
    with pytest.raises(ValueError, match='increasing'):
        piecewise_constant(0.1, [20, 10])
    with pytest.raises(ValueError, match='non-negative'):
        piecewise_constant(0.1, [-1])


def test_very_short_runs_give_empty_phases():
    assert ratio_boundaries('2:1:1', 1) == [0, 1]
    lr = piecewise_by_ratio(0.1, '2:1:1', 1)
    np.testing.assert_allclose(values(lr, [0]), [0.01], rtol=1e-6)


def test_warmup_then_schedule():
    lr = with_warmup(piecewise_constant(0.1, [100]), 10)
    np.testing.assert_allclose(values(lr, [0, 4, 9, 10, 99, 100]), [0.01, 0.05, 0.1, 0.1, 0.1, 0.01],
                               rtol=1e-6)


def test_cosine_from_config_with_warmup_in_epochs():
    config = apply_overrides(default_config(), [
        ('schedule.name', 'cosine'), ('schedule.warmup_epochs', '1'), ('optimizer.learning_rate', '0.2')])
    lr = make_schedule(config, steps_per_epoch=10, total_steps=110)
    got = values(lr, [0, 9, 10, 60, 110])
    np.testing.assert_allclose(got, [0.02, 0.2, 0.2, 0.1, 0.0], atol=1e-6)


def test_piecewise_from_config_converts_epochs_once():
    config = apply_overrides(default_config(), [
        ('schedule.name', 'piecewise'), ('schedule.boundaries_epochs', '(82, 123)')])
    lr = make_schedule(config, steps_per_epoch=390, total_steps=64_000)
    assert steps_from_epochs(82, 390) == 31_980
    np.testing.assert_allclose(values(lr, [31_979, 31_980, 47_969, 47_970]), [0.1, 0.01, 0.01, 0.001],
                               rtol=1e-6)


def test_default_schedule_is_he_et_al():
    lr = make_schedule(default_config(), steps_per_epoch=390, total_steps=64_000)
    np.testing.assert_allclose(values(lr, [31_999, 32_000, 47_999, 48_000]), [0.1, 0.01, 0.01, 0.001],
                               rtol=1e-6)
