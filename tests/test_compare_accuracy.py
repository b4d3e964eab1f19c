"""The PyTorch run of a cnnzoo recipe sees what the JAX loop sees, and follows the same trajectory.

A tiny ResNet (one block per stage) on the tiny archive of conftest: the twin's batches (order,
crop offsets, flips, normalisation) equal the JAX step's exactly; trained for a few steps with
PyTorch's BatchNorm convention, both frameworks end at the same weights up to float rounding; the
comparison script writes its table and refuses bad flags in one line.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from cnnzoo import data as data_lib
from cnnzoo.bench.accuracy import compare_accuracy, markdown, relative_difference, write
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import ConfigError, RunError
from cnnzoo.rngs import step_stream
from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.setup import build
from cnnzoo.torch.recipe import TorchRun, train_torch
from cnnzoo.training.steps import step_keys

pytestmark = pytest.mark.usefixtures('one_torch_thread')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')
SCRIPT = os.path.join(ROOT, 'scripts', 'compare_accuracy.py')


def tiny_overrides(archive, cache_dir, **extra):
    overrides = {
        'data.source': 'archive', 'data.archive': archive, 'data.data_dir': cache_dir,
        'model.stage_sizes': '(1, 1, 1)', 'model.bn_running_var': 'unbiased',
        'training.batch_size': '20', 'training.num_steps': '4', 'training.eval_batch_size': '25',
        'training.eval_every_epochs': '0.2', 'training.log_every_steps': '2',
        'training.checkpoint_every_steps': '100', 'training.progress_bar': 'False',
        'optimizer.learning_rate': '0.05', 'schedule.name': 'cosine', 'schedule.warmup_epochs': '0.1',
    }
    overrides.update(extra)
    return list(overrides.items())


def tiny_config(archive, cache_dir, **extra):
    return apply_overrides(load_config_file(EXPERIMENT), tiny_overrides(archive, cache_dir, **extra))


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('cache'))


@pytest.mark.parametrize('preset', ['crop_flip', 'none'])
def test_torch_batches_are_the_jax_steps_batches(tiny_cifar10, cache_dir, preset):
    config = tiny_config(tiny_cifar10, cache_dir, **{'data.augment': preset})
    setup = build(config)
    ds, spe, b = setup.dataset, setup.steps_per_epoch, config.training.batch_size
    run = TorchRun(config, setup)
    for step in (0, 3, spe + 2):  # a later epoch: new order, new draws
        x, labels = run.augmented_batch(step)
        perm = data_lib.epoch_permutation(config.seed, step // spe, len(ds.train_images))
        batch = data_lib.take_batch(ds.train_images, ds.train_labels, perm, step % spe, b)
        aug_key, _ = step_keys(jax.random.fold_in(step_stream(config.seed), step))
        expected = data_lib.normalize(data_lib.augment(aug_key, batch['image'], preset, mean=ds.mean),
                                      ds.mean, ds.std)
        np.testing.assert_array_equal(labels.numpy(), np.asarray(batch['label']))
        np.testing.assert_allclose(x.numpy(), np.asarray(expected), rtol=0, atol=1e-6)
    if preset == 'crop_flip':  # the draws really vary: not every image of a batch is the plain one
        plain = data_lib.normalize(data_lib.to_float(batch['image']), ds.mean, ds.std)
        assert not np.allclose(x.numpy(), np.asarray(plain))


def test_other_presets_are_refused_in_one_line(tiny_cifar10, cache_dir):
    config = tiny_config(tiny_cifar10, cache_dir, **{'data.augment': 'cutout'})
    with pytest.raises(ValueError, match=r"config.data.augment='cutout'.*offers none, crop_flip"):
        TorchRun(config, build(config))


@pytest.fixture(scope='module')
def report(tiny_cifar10, cache_dir, tmp_path_factory):
    config = tiny_config(tiny_cifar10, cache_dir)
    workdir = str(tmp_path_factory.mktemp('compare') / 'jax_run')
    return compare_accuracy(config, workdir=workdir, log=lambda *a: None), config, workdir


def jax_final_params(config, workdir):
    setup = build(config)
    ckpts = Checkpoints(workdir, keep=2)
    params = ckpts.restore(setup.state, 'latest').state.params
    ckpts.close()
    return setup, jax.device_get(params)


@pytest.mark.slow
def test_both_frameworks_train_the_same_recipe(report):
    """Evaluations at the same steps, close accuracies and losses, and parameters that stay close.

    Not bitwise: see cnnzoo/torch/recipe.py for how fast float rounding separates the two runs.
    """
    report, _config, _workdir = report
    jax_run, torch_run = report['runs']['jax'], report['runs']['torch']
    assert 0 < report['final_parameter_difference'] < 0.1
    assert [e['step'] for e in jax_run['evals']] == [e['step'] for e in torch_run['evals']] == [2, 4]
    for a, b in zip(jax_run['evals'], torch_run['evals']):
        assert a['accuracy'] == pytest.approx(b['accuracy'], abs=3 / 50 + 1e-9)  # 3 of the 50 images
        assert a['loss'] == pytest.approx(b['loss'], rel=0.05)
    assert jax_run['final_accuracy'] == jax_run['evals'][-1]['accuracy']
    for run in (jax_run, torch_run):
        assert run['wall_seconds'] > 0 and run['train_images_per_sec'] > 0


def _start_from(dst, src):
    """Puts ``src``'s weights, statistics and optimizer state into ``dst`` (cast to its dtype)."""
    import torch

    with torch.no_grad():
        for d, s in zip(dst.model.state_dict().values(), src.model.state_dict().values(), strict=True):
            d.copy_(s)
        dst.opt.state.clear()
        for d, s in zip(dst.model.parameters(), src.model.parameters(), strict=True):
            if s in src.opt.state:
                dst.opt.state[d] = {k: v.to(d.dtype).clone() if torch.is_tensor(v) and v.is_floating_point() else v
                                    for k, v in src.opt.state[s].items()}


@pytest.mark.slow
def test_float64_twin_is_a_rounding_reference(report):
    """Every step of the float64 twin, started from the float32 twin's state, makes the float32
    step's update up to float32 rounding: the double-precision run is the same recipe, so PyTorch's
    own float32 rounding is what it measures (see cnnzoo/torch/recipe.py).

    Step by step, not the ends of two whole runs: a trajectory is chaotic. Probed on this test's
    config, nudging every float32 weight by one ulp moved the parameters after 4 steps by 3e-2 or by
    8e-7 depending on the nudge's signs, and on synthetic images the float32 and float64 runs end
    4e-3 apart while their single steps agree to 1e-5 of the update, as on real images
    (results/cpu/probes/float64_twin.log).
    """
    import torch

    _, config, _ = report
    setup = build(config)
    r32, r64 = TorchRun(config, setup), TorchRun(config, setup, float64=True)

    def params(run):
        return [p.detach().to(torch.float64).clone() for p in run.model.parameters()]

    ratios = []
    for step in range(setup.total_steps):
        _start_from(r64, r32)
        before = params(r32)
        r32.step(step)
        r64.step(step)
        after32, after64 = params(r32), params(r64)
        error = sum(float(((a - b) ** 2).sum()) for a, b in zip(after32, after64, strict=True)) ** 0.5
        update = sum(float(((b - p) ** 2).sum()) for b, p in zip(after64, before, strict=True)) ** 0.5
        assert update > 0
        ratios.append(error / update)
    # Measured (12-step probes, real and synthetic images, one and two threads): 2e-6 to 3e-5 of the
    # update on most steps, up to 1.2e-4 where the cosine rate nears zero and the float32 storage of
    # the weights is a larger part of the small update, and single steps at 3-4e-4 (activations that
    # rounding moves across ReLU's kink). A recipe difference (rate, data, normalisation) changes the
    # update by its own order, far above both bounds.
    assert max(ratios) < 1e-2, ratios
    assert float(np.median(ratios)) < 1e-4, ratios


@pytest.mark.slow
def test_a_different_recipe_gives_a_different_trajectory(report, tiny_cifar10, cache_dir):
    """The closeness above is not an accident of a tiny run: PyTorch with another rate ends elsewhere."""
    _, _, workdir = report
    config = tiny_config(tiny_cifar10, cache_dir, **{'optimizer.learning_rate': '0.1'})
    setup, jax_params = jax_final_params(config, workdir)
    other = train_torch(config, setup, log=lambda *a: None)['run'].variables()['params']
    assert relative_difference(other, jax_params) > 0.2


@pytest.mark.slow
def test_report_files(report, tmp_path):
    report, _, _ = report
    json_path, md_path = write(report, str(tmp_path / 'acc'))
    with open(json_path) as f:
        body = json.load(f)
    assert set(body['runs']) == {'jax', 'torch'} and body['config']['model']['bn_running_var'] == 'unbiased'
    table = pathlib.Path(md_path).read_text()
    assert '| resnet20 | jax |' in table and '| resnet20 | torch |' in table
    assert markdown(report) in table


@pytest.mark.slow
def test_workdir_holding_a_run_is_refused(report):
    _, config, workdir = report
    with pytest.raises(ConfigError, match='already holds a run'):
        compare_accuracy(config, workdir=workdir, frameworks=('jax',))


@pytest.mark.parametrize('args, message', [
    ([], '--config is required'),
    (['--config', EXPERIMENT, '--frameworks', 'jax,tf'], '--frameworks takes'),
    (['--config', EXPERIMENT, '--config.training.nope=1'], 'nope'),
])
def test_script_bad_flags_are_one_line(args, message):
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, check=False, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith('error: ') and message in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_pytorch_loss_blowing_up_stops_in_one_line(tiny_cifar10, cache_dir):
    config = tiny_config(tiny_cifar10, cache_dir, **{'optimizer.learning_rate': '1e30', 'schedule.warmup_epochs': '0'})
    with pytest.raises(RunError, match=r'^PyTorch loss is (nan|inf) by step \d+; stopping$'):
        train_torch(config, build(config), log=lambda *a: None)


@pytest.mark.parametrize('key, value, message', [
    ('optimizer.name', 'lars', "config.optimizer.name='lars' has no PyTorch twin: torch.optim has no LARS"),
    ('optimizer.name', 'lamb', "config.optimizer.name='lamb' has no PyTorch twin: torch.optim has no LAMB"),
    ('data.augment', 'cutout', "config.data.augment='cutout': the PyTorch side offers none, crop_flip"),
])
def test_what_the_pytorch_side_lacks_is_refused_before_either_framework_trains(tiny_cifar10, cache_dir, tmp_path,
                                                                                key, value, message):
    config = tiny_config(tiny_cifar10, cache_dir, **{key: value})
    with pytest.raises(ConfigError) as raised:
        compare_accuracy(config, workdir=str(tmp_path / 'run'), log=lambda *a: None)
    assert str(raised.value).startswith(message) and '\n' not in str(raised.value)
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_both_frameworks_train_and_evaluate_with_the_configs_criterion(tiny_cifar10, cache_dir, tmp_path):
    """Poly-1 (epsilon 2) with label smoothing: the mean training loss of the first two steps and every
    evaluation loss (the criterion without smoothing) agree between the frameworks, as closely as
    with cross-entropy (test_both_frameworks_train_the_same_recipe); epsilon * (1 - p_y) adds about
    1.8 to an untrained network's loss, so a framework falling back to cross-entropy would fail."""
    config = tiny_config(tiny_cifar10, cache_dir, **{'training.loss': 'poly1', 'training.label_smoothing': '0.1',
                                                     'training.poly1_epsilon': '2.0'})
    lines = []
    report = compare_accuracy(config, workdir=str(tmp_path / 'run'), log=lines.append)
    jax_run, torch_run = report['runs']['jax'], report['runs']['torch']
    assert len(jax_run['evals']) == len(torch_run['evals']) == 2
    for a, b in zip(jax_run['evals'], torch_run['evals']):
        assert a['loss'] == pytest.approx(b['loss'], rel=0.05)
        assert a['loss'] > 3.0  # cross-entropy + 2 (1 - p_y) of a network that barely trained
    with open(tmp_path / 'run' / 'metrics.jsonl') as f:
        jax_first = next(r['loss'] for r in map(json.loads, f) if r.get('step') == 2 and 'learning_rate' in r)
    torch_first = float(next(line for line in lines if line.startswith('torch step 2/')).split(' loss ')[1].split()[0])
    assert jax_first == pytest.approx(torch_first, rel=1e-3)
