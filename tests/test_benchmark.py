"""The JAX/PyTorch speed benchmark runs end to end and reports well-formed figures (never timing claims)."""

import math
import pathlib

import jax
import numpy as np
import pytest

from cnnzoo.bench.speed import markdown_table, run_benchmark, step_stats, write_report
from cnnzoo.data.augmentation import crop_flip_draws, random_crop_flip, to_float

torch = pytest.importorskip('torch')


@pytest.mark.slow  # two frameworks compile resnet20; the table and the failing row are in the fast lane
def test_benchmark_reports_every_variant(tmp_path):
    report = run_benchmark(['resnet20'], ['jax-fp32', 'torch-eager-fp32'], batch_size=4, steps=2, warmup=1,
                           rounds=2, num_images=16, log=lambda text: None)
    results = report['results']
    assert [(r.model, r.variant) for r in results] == [('resnet20', 'jax-fp32'), ('resnet20', 'torch-eager-fp32')]
    for r in results:
        assert not r.error
        assert r.steps == 2
        for value in (r.train_images_per_sec, r.train_images_per_sec_p10, r.train_images_per_sec_p90,
                      r.eval_images_per_sec, r.first_step_s):
            assert value is not None and math.isfinite(value) and value > 0
        assert r.train_images_per_sec_p10 <= r.train_images_per_sec <= r.train_images_per_sec_p90
        assert math.isfinite(r.final_loss)
    assert results[0].memory_bytes > 0  # XLA's memory analysis exists on every backend

    table = markdown_table(report)
    rows = [line for line in table.splitlines() if line.startswith('| resnet20 |')]
    assert len(rows) == 2 and 'jax-fp32' in rows[0] and 'torch-eager-fp32' in rows[1]
    assert '1.00x' in rows[1]  # the reference variant against itself

    json_path, md_path = write_report(report, str(tmp_path / 'run'))
    assert pathlib.Path(md_path).read_text().count('| resnet20 |') == 2
    assert '"loadavg_before"' in pathlib.Path(json_path).read_text()


def test_a_variant_that_fails_is_a_row_not_a_crash(monkeypatch):
    import cnnzoo.bench.speed as bench

    def no_compiler(model_name, variant, **kwargs):
        raise RuntimeError('InvalidCxxCompiler: No working C++ compiler found\nmore detail')

    monkeypatch.setattr(bench, 'make_variant', no_compiler)
    report = run_benchmark(['resnet20'], ['torch-compile-fp32'], batch_size=4, steps=1, warmup=1,
                           num_images=8, log=lambda text: None)
    (r,) = report['results']
    assert r.error == 'RuntimeError: InvalidCxxCompiler: No working C++ compiler found'
    assert 'failed: RuntimeError: InvalidCxxCompiler' in markdown_table(report)


def test_an_unknown_variant_is_a_one_line_error():
    with pytest.raises(ValueError, match='unknown variant'):
        run_benchmark(['resnet20'], ['jax-fp64'])


def test_torch_crop_flip_is_the_jax_augmentation():
    from cnnzoo.torch.ops import crop_flip

    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    rng = jax.random.PRNGKey(3)
    offsets, flips = (np.array(a) for a in crop_flip_draws(rng, 6))  # the draws random_crop_flip makes
    assert flips.any() and not flips.all() and len(np.unique(offsets)) > 1
    expected = np.asarray(random_crop_flip(rng, to_float(images)))
    got = crop_flip(torch.from_numpy(images), torch.from_numpy(offsets).long(), torch.from_numpy(flips)).numpy()
    np.testing.assert_array_equal(got, expected)


def test_step_stats():
    summary, median_rate, slow, fast = step_stats([0.1, 0.2, 0.4], batch_size=8)
    assert summary['median'] == pytest.approx(200.0)
    assert median_rate == pytest.approx(40.0)
    assert slow < median_rate < fast
