"""Shared fixtures: tiny CIFAR-10 archives in the official python layout, made on the fly.

The suite shares one JAX persistent compilation cache, in this process and in the runs it starts
as subprocesses (through the environment): the tiny runs compile the same programs over and over,
and compiling, not training, is most of their time. A cache hit gives the very executable a fresh
compilation would, so the bitwise comparisons hold.
"""

import atexit
import io
import os
import pickle
import shutil
import tarfile
import tempfile

# The suite's programs are tiny and compiling them is most of its time: LLVM at -O0 compiles the
# zoo's training steps in about half the time (resnet50's in tests/test_zoo_training.py: 61 -> 38 s),
# and the large operations (convolutions, matrix products) are library calls that the level does
# not change. Runs and references alike compile this way, here and in the subprocesses (which
# inherit the environment; ``env_with_devices`` keeps the flag), so comparisons stay like for like.
# Set XLA_FLAGS yourself to test another level. Figures: results/cpu/tests/o0_compile.log.
if 'XLA_FLAGS' not in os.environ:
    os.environ['XLA_FLAGS'] = '--xla_backend_optimization_level=0'

# No test touches the internet: a CIFAR download would go to a port nothing listens on (the discard
# port of this machine), so a test that finds no CIFAR sees "no network"; the tests that fetch serve
# the archive themselves (tests/test_download.py) and point this variable at their server.
os.environ['CNNZOO_CIFAR_MIRROR'] = 'http://127.0.0.1:9'

if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
    os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='cnnzoo-tests-xla-cache-')
    atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)
# JAX stores only programs that took a second to compile; the suite's subprocess runs each compile
# some twenty small ones (eager operations of initialisation, the step's helpers) that then miss the
# cache: stored too, a tiny run from the command line takes 7.2 instead of 8.2 s
# (results/cpu/probes/tiny_run_startup.log).
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import numpy as np
import pytest

SHARED_PACK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared',
                           'data', 'cifar10_jpeg.npz')


def env_with_devices(devices: int, **extra) -> dict:
    """This process's environment for a subprocess with ``devices`` simulated CPU devices (the suite's
    own XLA flags kept)."""
    flags = ' '.join(f for f in os.environ.get('XLA_FLAGS', '').split()
                     if not f.startswith('--xla_force_host_platform_device_count'))
    return {**os.environ, 'XLA_FLAGS': f'{flags} --xla_force_host_platform_device_count={devices}'.strip(), **extra}


def real_cifar10_images(n_train, n_test):
    """The first images of the real CIFAR-10 (the JPEG copy in ../shared/data), or None without it."""
    if not os.path.exists(SHARED_PACK):
        return None
    from PIL import Image

    z = np.load(SHARED_PACK)
    out = []
    for split, n in (('train', n_train), ('test', n_test)):
        raw, off = z[f'{split}_jpeg'], z[f'{split}_offsets']
        x = np.stack([np.asarray(Image.open(io.BytesIO(raw[off[i]:off[i + 1]].tobytes())).convert('RGB'))
                      for i in range(n)])
        out += [x.astype(np.uint8), z[f'{split}_labels'][:n].astype(np.int64)]
    return out


def write_cifar10_python_archive(path, *, per_batch=40, test=50, seed=0, real=False):
    """A tiny ``cifar-10-python.tar.gz``: 5 train batches of ``per_batch`` images, ``test`` test images.

    With ``real=True`` and ../shared/data present, the images are the first ones of the real
    CIFAR-10; otherwise they are random with a class-dependent mean colour (learnable a little).
    Returns ``(x_train, y_train, x_test, y_test)`` as NHWC uint8 / int arrays.
    """
    rng = np.random.default_rng(seed)

    def images(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 64, (n, 32, 32, 3)) + (y[:, None, None, None] * 19)
        return x.astype(np.uint8), y

    arrays = real_cifar10_images(5 * per_batch, test) if real else None
    if arrays is not None:
        x_train, y_train, x_test, y_test = arrays
    else:
        x_train, y_train = images(5 * per_batch)
        x_test, y_test = images(test)

    def add(tar, name, obj):
        data = pickle.dumps(obj)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    def batch(x, y):
        return {b'batch_label': b'tiny', b'labels': [int(v) for v in y],
                b'data': x.transpose(0, 3, 1, 2).reshape(len(x), 3072),
                b'filenames': [b'x.png'] * len(x)}

    with tarfile.open(path, 'w:gz') as tar:
        for i in range(5):
            s = slice(i * per_batch, (i + 1) * per_batch)
            add(tar, f'cifar-10-batches-py/data_batch_{i + 1}', batch(x_train[s], y_train[s]))
        add(tar, 'cifar-10-batches-py/test_batch', batch(x_test, y_test))
        add(tar, 'cifar-10-batches-py/batches.meta',
            {b'label_names': [f'class{i}'.encode() for i in range(10)], b'num_cases_per_batch': per_batch})
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope='session')
def tiny_cifar10(tmp_path_factory):
    """Path of a tiny cifar-10-python.tar.gz (200 train, 50 test images), shared by a session.

    Real CIFAR-10 images when ../shared/data is there (as on CI), synthetic ones otherwise.
    """
    path = tmp_path_factory.mktemp('tiny_cifar') / 'cifar-10-python.tar.gz'
    write_cifar10_python_archive(path, real=True)
    return str(path)


@pytest.fixture(scope='module')
def one_torch_thread():
    """PyTorch on one thread for a module (use with ``pytestmark``): the tensors of the tests are tiny,
    and on a few busy cores torch's OpenMP workers only wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
    """A data directory shared by the tiny runs (the decoded archive is cached there once)."""
    return str(tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='session')
def reference(tiny_cifar10, cache_dir, tmp_path_factory):
    """The uninterrupted tiny run (tests/tiny_run.py), in this process: what every kill, damage and
    resume test must end equal to. Tests must not change its workdir (copy it first)."""
    from tiny_run import tiny_config

    from cnnzoo.run.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp('reference')
    summary = train_and_evaluate(tiny_config(tiny_cifar10, cache_dir), str(workdir))
    return summary, workdir


# Fixtures that train or build something costly once for their module (or the session). Under
# xdist a module's tests run on both workers, and each worker builds such a fixture for itself: in
# the fast lane the small sweep, the reference run and AlexNet's initialisation were each built
# twice. Tests that use one join the fixture's xdist group (pyproject's --dist loadgroup), which
# keeps them on one worker; test_scale's three runs make one group, as most of its tests use two of
# them. A test in a group already (tiny_run.PROCESSES) keeps only that one.
SHARED_FIXTURES = {'reference': 'reference', 'one_device': 'scale', 'four_devices': 'scale', 'seeds_run': 'scale',
                   'streamed_reference': 'streamed_reference', 'small_sweep': 'small_sweep',
                   'killed_and_resumed': 'killed_and_resumed', 'killed_at_15': 'killed_at_15', 'small': 'alexnet_small',
                   'small_resnet': 'small_resnet', 'resnet20_pair': 'resnet20_pair'}

# Modules of many short tests (each under about 2 s in the fast lane), run last, in this order: the
# workers take tests one at a time from the end of the queue, so a queue that ends in short tests
# lets both finish together. In alphabetical order the queue ended in test_training and
# test_zoo_training, whose tests train, and one worker waited for the other's last run.
SCHEDULED_LAST = ('test_layers', 'test_data', 'test_reliability', 'test_losses', 'test_training', 'test_exit_statuses',
                  'test_damaged_data', 'test_download', 'test_resolver', 'test_config', 'test_schedules',
                  'test_architecture', 'test_lint', 'test_readme', 'test_registry', 'test_suite_setup')


def scheduled_last(item) -> int:
    """Where ``item``'s module falls at the end of the queue (0: before all of SCHEDULED_LAST)."""
    name = item.path.stem
    return SCHEDULED_LAST.index(name) + 1 if name in SCHEDULED_LAST else 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker('xdist_group') is None:
            groups = [SHARED_FIXTURES[name] for name in getattr(item, 'fixturenames', ()) if name in SHARED_FIXTURES]
            if groups:
                item.add_marker(pytest.mark.xdist_group(groups[0]))
    # pytest-xdist's loadgroup sends the groups first (the largest first), then the other tests in
    # this order
    items.sort(key=scheduled_last)


# The fast lane (`pytest -m "not slow"`): registry-wide tests run these models only: a network
# with BatchNorm and shortcuts, and one without BatchNorm, with LRN, grouped convolutions and
# dropout. The other layer kinds reach the fast lane through the PyTorch parity cases
# (tests/test_torch_parity.py FAST_LANE_CASES) and the families' own test files; the whole suite
# runs every registered model.
FAST_LANE_MODELS = ('resnet20', 'alexnet_2012')


# A full Inception v3 step compiles and runs for a minute on two CPU cores; these five modules
# exercise every module kind, both grid reductions and the auxiliary head at half the cost.
INCEPTION_SHORT = ('Mixed_5b', 'Mixed_6a', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b')
# GoogLeNet likewise: one module per stage, both max-pools, and the two modules the auxiliary
# heads read (4a, 4d).
GOOGLENET_SHORT = ('inception3a', 'maxpool3', 'inception4a', 'inception4d', 'maxpool4', 'inception5b')


def shortened(model, *, blocks: int | None = None):
    """``model`` with the Inception networks' module lists cut to the modules above (every module
    kind kept) and, with ``blocks``, a ResNet's stages cut to at most that many blocks (every block
    kind, the strided first blocks and the shortcuts kept) and a VGG's stages to at most that many
    convolutions (so VGG-16 and -19 train as VGG-13 does; C's 1x1 layers kept); any other model
    unchanged."""
    if blocks and getattr(model, 'stage_sizes', None):
        model = model.clone(stage_sizes=tuple(min(n, blocks) for n in model.stage_sizes))
    if blocks and 'M' in (getattr(model, 'config', None) or ()):  # VGG: a stage's first and last convolutions
        model = model.clone(config=_vgg_stages_cut(model.config, blocks))
    if getattr(model, 'mixed', None):  # Inception v3
        model = model.clone(mixed=tuple(m for m in model.mixed if m[0] in INCEPTION_SHORT))
    if getattr(model, 'layout', None) and any(m[0] == 'inception3a' for m in model.layout):  # GoogLeNet
        model = model.clone(layout=tuple(m for m in model.layout if m[0] in GOOGLENET_SHORT))
    return model


def _vgg_stages_cut(config, blocks):
    """A VGG layer list with each stage (the convolutions between two 'M') cut to its first
    ``blocks - 1`` convolutions and its last (configuration C's 1x1 convolutions are last)."""
    out, stage = [], []
    for entry in config:
        if entry == 'M':
            out += (stage if len(stage) <= blocks else stage[:blocks - 1] + stage[-1:]) + ['M']
            stage = []
        else:
            stage.append(entry)
    return tuple(out + stage)


def distinct_networks(names, network) -> list[str]:
    """The names among ``names`` whose ``network(name)`` (a module) differs from every earlier
    one's: the fast lane's models first, then the shorter of two names (resnet20 before resnet1202)."""
    seen, kept = set(), set()
    for name in sorted(names, key=lambda n: (n not in FAST_LANE_MODELS, len(n), n)):
        signature = repr(network(name))
        if signature not in seen:
            seen.add(signature)
            kept.add(name)
    return [name for name in names if name in kept]


# The tiers: the fast lane (`-m "not slow"`, every code path once), the suite (`pytest -q`: the
# fast lane and the long tests of paths the fast lane reaches more cheaply: kills, several processes,
# whole sweeps) and the exhaustive tier (`-m exhaustive`: the repeats over every registered model and
# parity case beyond the fast lane's, the GPU kit's smoke stages beyond one, and variants of paths the
# suite runs once, each saying what covers its path; CI runs it too).
EXHAUSTIVE = (pytest.mark.slow, pytest.mark.exhaustive)


def registry_params(names):
    """``names`` as pytest params, those outside FAST_LANE_MODELS in the exhaustive tier."""
    return [pytest.param(name, marks=() if name in FAST_LANE_MODELS else EXHAUSTIVE) for name in names]
