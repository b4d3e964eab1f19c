"""Bad input refused up front, damaged runs recovered, records exact after a resume.

Every case here failed before issue 11: a traceback 12-50 s in, a run that could not be resumed,
or a log that differed from an uninterrupted run's. The runs are the tiny ones of tests/tiny_run.py
and end compared with the session's uninterrupted ``reference`` run.
"""

import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from conftest import EXHAUSTIVE, env_with_devices
from tiny_run import (
    EXPERIMENT,
    TOTAL_STEPS,
    TRAIN,
    assert_bitwise_equal,
    restore,
    run_script,
    tiny_config,
    tiny_overrides,
)

from cnnzoo.config import ConfigError
from cnnzoo.errors import RunError
from cnnzoo.run.checkpoints import Checkpoints
from cnnzoo.run.evaluate import evaluate_checkpoint
from cnnzoo.run.loop import train_and_evaluate
from cnnzoo.run.signals import Stopped, StopSignals, interruptible
from cnnzoo.run.validation import check_config

# (key, bad value, text the one-line error must contain)
BAD_VALUES = [
    ('model.name', 'resnet2000', "config.model.name='resnet2000': unknown model"),
    ('model.activation', 'relux', "config.model.activation='relux': choose one of relu"),
    ('model.residual', 'bogus', "config.model.residual='bogus': choose one of standard"),
    ('model.shortcut', 'C', "config.model.shortcut='C': choose one of A, B, none"),
    ('model.stem', 'tiny', "config.model.stem='tiny': choose one of"),
    ('model.stage_sizes', 'abc', "config.model.stage_sizes='abc': expected a tuple of integers"),
    ('model.zero_init_last_bn', '3', 'config.model.zero_init_last_bn=3: expected True or False'),
    ('model.widht', '3', "config.model.widht: model 'resnet20' has no field 'widht'"),
    ('model.dtype', 'bfloat16', 'config.model.dtype is set by the run (config.training.dtype)'),
    ('data.augment', 'fancy', "config.data.augment='fancy': choose one of none, crop_flip"),
    ('data.augment_mode', 'always', "config.data.augment_mode='always': choose one of online, expand"),
    ('data.name', 'mnist', ("config.data.name='mnist' with config.data.source='archive': the archive readers know "
                            'cifar10, cifar100')),
    ('schedule.ratio', '5::2', "config.schedule.ratio='5::2'"),
    ('schedule.ratio', 'a:b:c', "config.schedule.ratio='a:b:c'"),
    ('schedule.ratio', '0:0:0', "config.schedule.ratio='0:0:0'"),
    ('schedule.ratio', '-1:2:3', "config.schedule.ratio='-1:2:3'"),
    ('schedule.name', 'step', "config.schedule.name='step': choose one of constant"),
    ('schedule.boundaries_epochs', '(2, 1)', 'config.schedule.boundaries_epochs=(2, 1): must be non-negative'),
    ('schedule.warmup_epochs', '5.0', "config.schedule.warmup_epochs=5.0: must be at most the run's length"),
    ('optimizer.name', 'sgdd', "config.optimizer.name='sgdd': choose one of sgd, adam, adamw"),
    ('training.loss', 'l2', "config.training.loss='l2': choose one of cross_entropy"),
    ('training.dtype', 'float16', "config.training.dtype='float16': choose one of float32, bfloat16"),
    ('optimizer.learning_rate', '-0.1', 'config.optimizer.learning_rate=-0.1: must be > 0'),
    ('optimizer.momentum', '1.5', 'config.optimizer.momentum=1.5: must be in [0, 1)'),
    ('optimizer.weight_decay', '-1e-4', 'config.optimizer.weight_decay=-0.0001: must be >= 0'),
    ('training.label_smoothing', '1.0', 'config.training.label_smoothing=1.0: must be in [0, 1)'),
    ('training.focal_gamma', '3.0', ("config.training.focal_gamma=3.0 is read by training.loss=focal; "
                                     "training.loss='cross_entropy' does not read it")),
    ('training.batch_size', '0', 'config.training.batch_size=0: must be > 0'),
    ('training.num_seeds', '0', 'config.training.num_seeds=0: must be > 0'),
    ('training.seed_devices', '2', 'config.training.seed_devices=2: must be > 0 and divide training.num_seeds=1'),
    ('training.keep_checkpoints', '0', 'config.training.keep_checkpoints=0: must be > 0'),
]


@pytest.mark.parametrize('key,value,message', BAD_VALUES, ids=[f'{k}={v}' for k, v, _ in BAD_VALUES])
def test_bad_value_is_one_line_before_anything_is_read_or_written(key, value, message, tiny_cifar10, tmp_path):
    data_dir, workdir = tmp_path / 'data', tmp_path / 'run'
    with pytest.raises(ConfigError) as caught:
        # Some values are refused as the override is applied, the rest by the loop's first check.
        train_and_evaluate(tiny_config(tiny_cifar10, str(data_dir), **{key: value}), str(workdir))
    text = str(caught.value)
    assert message in text and '\n' not in text, text
    assert not workdir.exists() and not data_dir.exists()


def test_model_too_large_for_cifar_names_its_cifar_fields(tmp_path):
    from cnnzoo.config import apply_overrides, load_config_file

    config = apply_overrides(load_config_file(EXPERIMENT), [('model.name', 'inception_v3')])
    with pytest.raises(ConfigError, match=r"inception_v3' needs 299x299 inputs .*--config.model.stem=cifar"):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('key,value', [('model.name', 'resnet2000'), ('schedule.ratio', '5::2'),
                                       ('optimizer.learning_rate', '-0.1')])
def test_bad_value_on_the_command_line_is_exit_2_and_one_line(key, value, tmp_path):
    # The archive does not exist: had the data been read first, the error would be about it.
    overrides = tiny_overrides(str(tmp_path / 'missing.tar.gz'), str(tmp_path / 'data'), **{key: value})
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run')]
    result = subprocess.run(cmd + [f'--config.{k}={v}' for k, v in overrides], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: config.{key}='), result.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_batch_that_does_not_divide_over_the_devices_is_refused(tmp_path):
    code = ("from cnnzoo.config import load_config_file, apply_overrides\n"
            "from cnnzoo.run.validation import check_config\n"
            f"c = apply_overrides(load_config_file({EXPERIMENT!r}), [('training.batch_size', '15')])\n"
            "check_config(c)\n")
    env = env_with_devices(2, JAX_PLATFORMS='cpu')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, check=False, text=True, env=env,
                            timeout=120)
    assert result.returncode == 1
    assert 'config.training.batch_size=15 does not divide over 2 devices' in result.stderr


def refuse_to_decode(monkeypatch):
    """Every way the data's images are loaded, converted or decoded raises: a check that needs none passes."""
    from cnnzoo.data import archives, datasets, images

    def decode(*args, **kwargs):
        raise AssertionError('an image was read before the config was checked')

    for module, name in ((archives, 'planes_to_nhwc'), (archives, 'read_archive'), (datasets, 'read_archive'),
                         (datasets, '_load_archive_cached'), (images, 'decode')):
        monkeypatch.setattr(module, name, decode)


@pytest.mark.parametrize('cached', [False, True], ids=['archive', 'cache'])
def test_warmup_in_epochs_longer_than_a_run_in_steps_is_refused_before_the_data_is_read(
        cached, tiny_cifar10, cache_dir, tmp_path, monkeypatch):
    # The archive's index (no cache in a fresh data dir), or the cache of a read before (the session's).
    data_dir = cache_dir if cached else str(tmp_path / 'data')
    if cached:
        from cnnzoo.data import load_dataset

        load_dataset('cifar10', source='archive', archive=tiny_cifar10, data_dir=cache_dir)
    config = tiny_config(tiny_cifar10, data_dir, **{'training.num_steps': '5', 'schedule.warmup_epochs': '1.0'})
    refuse_to_decode(monkeypatch)
    with pytest.raises(ConfigError, match=r'warmup_epochs=1.0 is 10 steps, longer than the whole run \(5 steps\)'):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()
    assert not (tmp_path / 'data').exists()  # nothing cached either: nothing was read


def test_warmup_against_an_image_folder_is_judged_from_its_file_count(tiny_cifar10, cache_dir, tmp_path, monkeypatch):
    from cnnzoo.data import load_dataset
    from cnnzoo.data.sources import write_image_folder

    ds = load_dataset('cifar10', source='archive', archive=tiny_cifar10, data_dir=cache_dir)
    two_classes = (ds.train_labels < 2).nonzero()[0][:24]  # 24 training images: 6 steps of 4 an epoch
    for split in ('train', 'val'):
        write_image_folder(ds.train_images[two_classes], ds.train_labels[two_classes], ds.class_names[:2],
                           str(tmp_path / 'f' / split))
    folder = {'data.source': 'folder', 'data.folder': str(tmp_path / 'f'), 'training.batch_size': '4',
              'training.eval_batch_size': '4', 'training.num_steps': '5'}
    refuse_to_decode(monkeypatch)
    config = tiny_config(tiny_cifar10, cache_dir, **folder, **{'schedule.warmup_epochs': '1.0'})
    with pytest.raises(ConfigError, match=r'warmup_epochs=1.0 is 6 steps, longer than the whole run \(5 steps\)'):
        train_and_evaluate(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()
    check_config(tiny_config(tiny_cifar10, cache_dir, **folder, **{'schedule.warmup_epochs': '0.5'}))  # 3 steps: fine


def test_warmup_in_epochs_is_refused_in_seconds_on_the_command_line(tiny_cifar10, tmp_path):
    overrides = tiny_overrides(tiny_cifar10, str(tmp_path / 'data'),
                               **{'training.num_steps': '5', 'schedule.warmup_epochs': '1.0'})
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run')]
    result = subprocess.run(cmd + [f'--config.{k}={v}' for k, v in overrides], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ('error: config.schedule.warmup_epochs=1.0 is 10 steps, longer than the whole run '
                             '(5 steps)\n')
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'data').exists()


def test_a_failed_start_leaves_the_workdir_as_it_found_it(tiny_cifar10, cache_dir, tmp_path):
    from cnnzoo.data import DataError

    fresh = tmp_path / 'fresh'
    with pytest.raises(DataError):
        train_and_evaluate(tiny_config(str(tmp_path / 'missing.tar.gz'), cache_dir), str(fresh))
    assert not fresh.exists()
    kept = tmp_path / 'kept'
    kept.mkdir()
    (kept / 'notes.txt').write_text('mine')
    (kept / 'config.json').write_text('{"an": "older start"}')
    with pytest.raises(RunError, match='loss is'):  # a NaN before the first checkpoint
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **{'optimizer.learning_rate': '1e30',
                                                                   'training.checkpoint_every_steps': '1000'}),
                           str(kept))
    assert sorted(os.listdir(kept)) == ['config.json', 'notes.txt']
    assert (kept / 'config.json').read_text() == '{"an": "older start"}'


def test_partial_cache_file_is_removed_after_a_write_error(tiny_cifar10, tmp_path, monkeypatch):
    from cnnzoo.data import datasets

    def savez_until_full(path, **arrays):
        with open(path, 'wb') as f:
            f.write(b'\0' * 1000)
        raise OSError(errno.ENOSPC, 'No space left on device', path)

    monkeypatch.setattr(datasets.np, 'savez', savez_until_full)
    arrays = datasets._load_archive_cached(tiny_cifar10, 'cifar10', str(tmp_path))
    assert len(arrays[0]) == 200
    leftovers = [name for _, _, names in os.walk(tmp_path) for name in names]
    assert leftovers == []


def _metrics(workdir, drop=('images_per_sec',)):
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in open(workdir / 'metrics.jsonl')]


def _tensorboard_scalars(workdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(workdir / 'tb'))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']
            if not tag.endswith('images_per_sec')}


@pytest.fixture(scope='module')
def killed_at_15(tiny_cifar10, cache_dir, tmp_path_factory):
    """A run SIGKILLed at step 15: checkpoints at steps 8 and 12, records written up to 15."""
    workdir = tmp_path_factory.mktemp('killed')
    code, out = run_script(workdir, tiny_overrides(tiny_cifar10, cache_dir), signal_at_step=15, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL, out
    return workdir


def _damage_data_file(checkpoint):
    data = os.path.join(checkpoint, 'state', 'ocdbt.process_0', 'd')
    largest = max((os.path.join(data, n) for n in os.listdir(data)), key=os.path.getsize)
    os.truncate(largest, os.path.getsize(largest) // 2)


def _empty_metadata(checkpoint):
    open(os.path.join(checkpoint, 'state', '_METADATA'), 'w').close()


@pytest.mark.slow
@pytest.mark.parametrize('damage', [_damage_data_file, _empty_metadata], ids=['truncated_file', 'empty_metadata'])
# the reads orbax abandons report a closed event loop, each with a traceback, after the restore has
# failed (by timing: in 3 of 6 tries of results/cpu/probes/orbax_echoes.py): none may reach the user
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
def test_damaged_newest_checkpoint_falls_back_and_ends_bitwise_equal(damage, killed_at_15, reference, tiny_cifar10,
                                                                     cache_dir, tmp_path, capfd):
    workdir = tmp_path / 'run'
    shutil.copytree(killed_at_15, workdir)
    newest = Checkpoints(str(workdir), keep=2).latest_step()
    damage(str(workdir / 'checkpoints' / str(newest)))

    summary = train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))

    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith('warning: checkpoint')]
    assert len(warnings) == 1 and f'checkpoints/{newest} cannot be restored' in warnings[0], err
    assert (workdir / 'damaged' / f'checkpoints-{newest}').is_dir()
    assert summary['step'] == TOTAL_STEPS
    assert_bitwise_equal(summary['state'].checkpoint_items(), reference[0]['state'].checkpoint_items())
    assert _metrics(workdir) == _metrics(reference[1])


def test_a_library_call_drops_orbax_teardown_echoes_while_it_runs_and_gives_the_hooks_back(monkeypatch):
    import asyncio
    import logging
    from types import SimpleNamespace

    from cnnzoo.run.checkpoints import quiet_teardown_echoes

    seen, threads = [], []
    monkeypatch.setattr(sys, 'unraisablehook', seen.append)
    monkeypatch.setattr(threading, 'excepthook', threads.append)
    absl_filters = list(logging.getLogger('absl').filters)
    loop = asyncio.new_event_loop()
    loop.close()
    try:
        loop.call_soon_threadsafe(print)
    except RuntimeError as error:
        echo = error
    # an unreadable checkpoint's abandoned read, reporting from tensorstore's thread (no Python caller)
    late_read = SimpleNamespace(exc_type=RuntimeError, exc_value=echo, exc_traceback=echo.__traceback__.tb_next,
                                err_msg=None, object=None)
    other = SimpleNamespace(exc_type=KeyError, exc_value=KeyError('x'), exc_traceback=None, err_msg=None, object=None)
    full = SimpleNamespace(exc_type=ValueError, exc_value=ValueError('RESOURCE_EXHAUSTED: Failed writing'),
                           exc_traceback=None, thread=None)
    with quiet_teardown_echoes():
        assert sys.unraisablehook != seen.append  # (the log filters may be the command line's already)
        for unraisable in (late_read, other):
            sys.unraisablehook(unraisable)
        threading.excepthook(full)  # a failed save's other writes, torn down in orbax's threads
    assert seen == [other] and threads == []
    assert sys.unraisablehook == seen.append and threading.excepthook == threads.append  # the caller's again
    assert logging.getLogger('absl').filters == absl_filters
    sys.unraisablehook(late_read)
    assert seen[-1] is late_read


@pytest.mark.slow
def test_evaluate_latest_falls_back_and_a_missing_step_lists_the_steps(killed_at_15, tiny_cifar10, cache_dir,
                                                                       tmp_path):
    workdir = tmp_path / 'run'
    shutil.copytree(killed_at_15, workdir)
    steps = Checkpoints(str(workdir), keep=2).steps()['latest']
    _empty_metadata(str(workdir / 'checkpoints' / str(steps[-1])))
    result = evaluate_checkpoint(str(workdir), which='latest')
    assert result['step'] == steps[-2]
    # Which steps the kill left (the oldest not yet removed, the best not yet written) varies: list them.
    checkpoints = Checkpoints(str(workdir), keep=2)
    there = checkpoints.steps()
    checkpoints.close()
    listing = ', '.join([*map(str, there['latest']), *(f'{s} (best)' for s in there['best'])])
    with pytest.raises(ConfigError, match=re.escape(f'no checkpoint at step 250; it has: {listing}')):
        evaluate_checkpoint(str(workdir), which=250)
    _empty_metadata(str(workdir / 'checkpoints' / str(steps[-2])))
    with pytest.raises(RunError, match='is damaged'):
        evaluate_checkpoint(str(workdir), which=steps[-2])
    # The kill may also have left an older step that was not yet removed: damage every one still there.
    checkpoints = Checkpoints(str(workdir), keep=2)
    left = checkpoints.steps()['latest']
    checkpoints.close()
    for step in left:
        _empty_metadata(str(workdir / 'checkpoints' / str(step)))
    with pytest.raises(RunError, match=r'no checkpoint in .* can be restored'):
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))


@pytest.mark.slow
def test_records_and_tensorboard_after_kill_and_resume_equal_an_uninterrupted_run(killed_at_15, reference,
                                                                                   tiny_cifar10, cache_dir, tmp_path):
    workdir = tmp_path / 'run'
    shutil.copytree(killed_at_15, workdir)
    latest = Checkpoints(str(workdir), keep=2).latest_step()
    assert max(r['step'] for r in _metrics(workdir)) > latest  # records past the checkpoint, to be dropped
    train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))
    assert _metrics(workdir) == _metrics(reference[1])
    scalars = _tensorboard_scalars(workdir)
    assert scalars == _tensorboard_scalars(reference[1])
    assert [step for step, _ in scalars['train/loss']] == list(range(1, TOTAL_STEPS + 1))


@pytest.mark.slow
def test_finished_run_started_again_writes_nothing_and_a_lost_evaluation_is_redone(reference, tiny_cifar10,
                                                                                   cache_dir, tmp_path):
    workdir = tmp_path / 'run'
    shutil.copytree(reference[1], workdir)
    before = (workdir / 'metrics.jsonl').read_text()
    train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))
    assert (workdir / 'metrics.jsonl').read_text() == before
    # As after a stop that cut the last evaluation short: the checkpoint is there, its record is not.
    lines = before.splitlines(keepends=True)
    (workdir / 'metrics.jsonl').write_text(''.join(lines[:-1]))
    summary = train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))
    assert summary['final']['step'] == TOTAL_STEPS
    assert _metrics(workdir) == _metrics(reference[1])


def _tmpfs_usable():
    probe = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'true'], capture_output=True,
                           check=False)
    return probe.returncode == 0


# A notebook's call: the same run in a Python process of its own that calls the library, which
# prints only the error it raises (before cnnzoo.run.checkpoints.quiet_teardown_echoes, orbax and
# asyncio printed hundreds of lines around it: results/cpu/probes/orbax_echoes.log).
LIBRARY_CALL = """
import sys
from cnnzoo.config import apply_overrides, load_config_file
from cnnzoo.errors import RunError
from cnnzoo.run.loop import train_and_evaluate
config = apply_overrides(load_config_file(sys.argv[1]), [a.split('=', 1) for a in sys.argv[3:]])
try:
    train_and_evaluate(config, sys.argv[2])
except RunError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.slow
@pytest.mark.parametrize('caller', ['command line', 'library call'])
def test_full_disk_during_a_save_is_one_line_and_leaves_no_partial_checkpoint(caller, tiny_cifar10, cache_dir,
                                                                            tmp_path, monkeypatch):
    workdir = tmp_path / 'disk' / 'run'
    (tmp_path / 'disk').mkdir()
    overrides = tiny_overrides(tiny_cifar10, cache_dir, **{'training.keep_checkpoints': '3'})
    if caller == 'command line':
        train = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(workdir)]
        train += [f'--config.{k}={v}' for k, v in overrides]
    else:
        train = [sys.executable, '-c', LIBRARY_CALL, EXPERIMENT, str(workdir), *[f'{k}={v}' for k, v in overrides]]
    if _tmpfs_usable():
        # A real full disk: a 2.5 MB tmpfs holds two checkpoints (~0.7 MB each) and the best one.
        # The listing is taken inside the namespace: the tmpfs goes with it.
        script = (f'mount -t tmpfs -o size=2500k tmpfs {tmp_path / "disk"} || exit 99; "$@"; status=$?; '
                  f'echo LISTING; ls {workdir / "checkpoints"}; exit $status')
        cmd = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', script, 'sh', *train]
        result = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=300)
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        message = lines[0]
        remaining = result.stdout.split('LISTING\n')[1].split()
    else:
        # No way to mount one here: the same error, injected where orbax would meet it.
        import orbax.checkpoint as ocp

        real_save, calls = ocp.CheckpointManager.save, []

        def save_until_full(self, step, *args, **kwargs):
            calls.append(step)
            if len(calls) > 3:
                raise OSError(errno.ENOSPC, 'No space left on device', str(self.directory))
            return real_save(self, step, *args, **kwargs)

        monkeypatch.setattr(ocp.CheckpointManager, 'save', save_until_full)
        workdir.parent.mkdir(exist_ok=True)
        with pytest.raises(RunError) as caught:
            train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **{'training.keep_checkpoints': '3'}),
                               str(workdir))
        message = f'error: {caught.value}'
        remaining = os.listdir(workdir / 'checkpoints')
    assert message.startswith('error: could not save checkpoint step ') and 'No space left on device' in message
    assert f'in {workdir}/' in message
    last_good = int(message.split('last good checkpoint: step ')[1])
    assert all(name.isdigit() for name in remaining), remaining  # no half-written save left behind
    assert max(map(int, remaining)) == last_good


def test_a_stop_signal_interrupts_a_long_wait_at_once():
    release = threading.Event()
    with StopSignals() as signals:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(Stopped, match='SIGTERM'):
            interruptible(lambda: release.wait(60), signals)  # a compilation that would take a minute
    release.set()
    assert signals.received == 'SIGTERM'


def test_a_stop_before_the_first_compilation_does_not_start_it():
    """An abandoned compilation runs on in its thread for as long as XLA takes (in a notebook's
    kernel, or in this suite's worker, after the call returned): a stop that came first skips it."""
    from cnnzoo.run.control import RunControl

    with StopSignals() as signals:
        compiled = []
        assert RunControl(signals, mesh=None).compile(lambda: compiled.append('one')) is None
        signals.received = 'SIGTERM'
        assert RunControl(signals, mesh=None).compile(lambda: compiled.append('two')) == 'SIGTERM'
    assert compiled == ['one']


@pytest.mark.slow  # the piecewise schedule in the exhaustive tier: the suite extends the constant one
@pytest.mark.parametrize('schedule', [
    pytest.param({'schedule.name': 'constant'}, id='constant'),
    pytest.param({'schedule.name': 'piecewise', 'schedule.boundaries_epochs': '(1, 2.5)'}, id='piecewise',
                 marks=EXHAUSTIVE)])
def test_extend_continues_bitwise_like_the_longer_run(schedule, tiny_cifar10, cache_dir, tmp_path, capsys):
    from cnnzoo.cli import main

    longer = train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **schedule), str(tmp_path / 'longer'))
    workdir = str(tmp_path / 'extended')
    # The console command's own function, in this process (a subprocess would only add start-up time).
    train = ['train', '--config', EXPERIMENT, '--workdir', workdir]
    train += [f'--config.{k}={v}' for k, v in tiny_overrides(tiny_cifar10, cache_dir, **schedule)]
    assert main(train + ['--config.training.num_epochs=2']) == 0
    capsys.readouterr()
    assert main(train) == 2
    refusal = capsys.readouterr().err.strip()
    assert refusal.startswith('error: ') and 'training.num_epochs' in refusal and 'add --extend' in refusal
    assert main(train + ['--extend']) == 0
    state = restore(tiny_config(tiny_cifar10, cache_dir, **schedule), workdir)
    assert int(state.step) == TOTAL_STEPS
    assert_bitwise_equal(state.checkpoint_items(), longer['state'].checkpoint_items())
    assert _metrics(tmp_path / 'extended') == _metrics(tmp_path / 'longer')
    history = [json.loads(line) for line in pathlib.Path(workdir, 'config_history.jsonl').read_text().splitlines()]
    assert history == [{'step': 20, 'changes': {'training.num_epochs': [2.0, 3.0]}}]


def test_a_run_shorter_than_one_step_and_a_workdir_that_is_a_file_are_refused(tiny_cifar10, cache_dir, tmp_path):
    with pytest.raises(ConfigError, match=r'num_epochs=0.01 is less than one step \(an epoch is 10 steps'):
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir, **{'training.num_epochs': '0.01'}),
                           str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()
    (tmp_path / 'file').write_text('not a directory')
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(tmp_path / 'file'))
    assert (tmp_path / 'file').read_text() == 'not a directory'


def test_an_os_error_that_stops_a_command_is_one_line_and_status_1(tmp_path, capsys):
    from cnnzoo.cli.common import run_cli

    def write_into_a_missing_directory():
        with open(tmp_path / 'missing' / 'metrics.jsonl', 'w') as f:
            f.write('{}')

    assert run_cli(write_into_a_missing_directory) == 1
    err = capsys.readouterr().err
    assert err == f'error: No such file or directory: {tmp_path / "missing" / "metrics.jsonl"}\n'


def test_supervise_leaves_no_log_or_pipe_when_the_child_cannot_start(tmp_path, monkeypatch):
    from cnnzoo.run import supervise as supervise_lib

    def cannot_start(*args, **kwargs):
        raise OSError('exec failed')

    monkeypatch.setattr(supervise_lib.tempfile, 'tempdir', str(tmp_path))
    monkeypatch.setattr(supervise_lib.subprocess, 'Popen', cannot_start)
    open_fds = len(os.listdir('/proc/self/fd'))
    with pytest.raises(OSError, match='exec failed'):
        supervise_lib.supervise(process_id=None, num_processes=None, workdir=str(tmp_path / 'run'))
    assert os.listdir(tmp_path) == []  # the temporary stderr log is gone
    assert len(os.listdir('/proc/self/fd')) == open_fds  # and both ends of the beat pipe are closed
