"""The one data resolver (cnnzoo.data.resolver): config.data.source and config.data.loader decided in
one place, from the registries of data sources and loaders."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_cifar10_python_archive

from cnnzoo.config import apply_overrides, default_config
from cnnzoo.data import resolver
from cnnzoo.data.datasets import Dataset
from cnnzoo.data.streaming import Stream
from cnnzoo.errors import ConfigError, DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
    return apply_overrides(default_config(), list(overrides.items()))


def test_the_registries_name_every_source_and_loader_with_help():
    assert resolver.DATA_SOURCES.names() == ('auto', 'archive', 'tfds', 'folder')
    assert resolver.LOADERS.names() == ('auto', 'device', 'grain')
    assert all(e.help for e in (*resolver.DATA_SOURCES.entries(), *resolver.LOADERS.entries()))
    with pytest.raises(ConfigError) as e:
        _config(**{'data.source': 'ftp'})
    assert str(e.value).startswith("config.data.source='ftp': ") and 'auto, archive, tfds, folder' in str(e.value)
    with pytest.raises(ConfigError, match=r"config.data.loader='disk': .*auto, device, grain"):
        _config(**{'data.loader': 'disk'})


@pytest.mark.parametrize('overrides, loader', [
    ({}, 'device'),
    ({'data.source': 'archive', 'data.name': 'cifar100'}, 'device'),
    ({'data.source': 'tfds'}, 'device'),
    ({'data.source': 'tfds', 'data.name': 'mnist'}, 'grain'),
    ({'data.source': 'folder', 'data.folder': 'x'}, 'grain'),
    ({'data.loader': 'grain'}, 'grain'),
])
def test_the_loader_a_section_resolves_to(overrides, loader):
    assert resolver.loader_of(_config(**overrides).data) == loader


def test_the_resolver_opens_what_the_run_consumes(tmp_path):
    """CIFAR held on the device (a Dataset), CIFAR streamed from memory, an image folder streamed
    (each a Stream) and its labels and name, through the one function."""
    from cnnzoo.data.sources import write_image_folder

    archive = tmp_path / 'cifar-10-python.tar.gz'
    x_train, *_ = write_cifar10_python_archive(archive, per_batch=4, test=6)
    cifar = {'data.archive': str(archive), 'data.data_dir': str(tmp_path / 'data')}
    held = resolver.open_data(_config(**cifar))
    assert isinstance(held, Dataset) and held.num_train == 20 and held.num_eval == 6
    np.testing.assert_array_equal(held.train_images, x_train)
    streamed = resolver.open_data(_config(**cifar, **{'data.loader': 'grain', 'data.workers': 0}), image_size=32)
    assert isinstance(streamed, Stream) and streamed.num_train == 20 and streamed.mean == held.mean
    write_image_folder(np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2, ('a', 'b'), str(tmp_path / 'f' / 'train'))
    write_image_folder(np.zeros((2, 8, 8, 3), np.uint8), np.arange(2), ('a', 'b'), str(tmp_path / 'f' / 'val'))
    folder = _config(**{'data.source': 'folder', 'data.folder': str(tmp_path / 'f'), 'data.workers': 0})
    stream = resolver.open_data(folder)
    assert (stream.num_train, stream.num_eval, stream.image_size, stream.class_names) == (4, 2, 8, ('a', 'b'))
    assert resolver.data_label(folder.data) == str(tmp_path / 'f') and resolver.data_label(_config().data) == 'cifar10'
    assert resolver.train_set_size(folder.data) == 4 and resolver.train_set_size(_config(**cifar).data) == 20
    # an evaluation needs no training images: a folder with its evaluation split alone opens for one
    os.rename(tmp_path / 'f' / 'train', tmp_path / 'f' / 'elsewhere')
    assert resolver.open_data(folder, training=False).num_eval == 2
    with pytest.raises(DataError, match='train not found'):
        resolver.open_data(folder)


def test_what_is_missing_is_one_line_from_the_source_that_knows(tmp_path):
    with pytest.raises(DataError, match=r'image folder .*nowhere not found'):
        resolver.check_found(_config(**{'data.source': 'folder', 'data.folder': str(tmp_path / 'nowhere')}).data)
    with pytest.raises(DataError, match='archive not found'):
        resolver.check_found(_config(**{'data.archive': str(tmp_path / 'none.tar.gz')}).data)
    resolver.check_found(_config(**{'data.source': 'tfds', 'data.name': 'mnist'}).data)  # the run finds it
    with pytest.raises(ConfigError, match=re.escape('needs --config.data.folder=PATH')):
        resolver.check_ready(_config(**{'data.source': 'folder'}).data)
    with pytest.raises(ConfigError, match=re.escape("config.data.name='mnist' with config.data.source='auto'")):
        _config(**{'data.name': 'mnist'})
    with pytest.raises(ConfigError, match='loader=device holds CIFAR on the device; mnist streams'):
        _config(**{'data.source': 'tfds', 'data.name': 'mnist', 'data.loader': 'device'})


def test_the_resolver_and_the_config_check_start_no_jax_grain_or_tfds():
    """`cnnzoo train --help` and every config check read the registries: importing them, and checking
    a config, must not start JAX (nor import grain, tensorflow-datasets or TensorFlow)."""
    code = ('import sys; from cnnzoo.config import default_config, validate; import cnnzoo.data.resolver; '
            'validate(default_config()); '
            'print(sorted(m for m in ("jax", "grain", "tensorflow_datasets", "tensorflow") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True)
    assert out.stdout.strip() == '[]', out.stdout + out.stderr


def test_no_module_but_the_resolver_decides_on_data_source_or_loader():
    """One function decides each branch: outside cnnzoo/data/resolver.py no module compares
    ``data.source`` or ``data.loader`` with a value."""
    decides = re.compile(r'\.(source|loader)\s*(==|!=|\bin\b|\bnot in\b)')
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, 'cnnzoo')):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith('.py') and path != os.path.join(ROOT, 'cnnzoo', 'data', 'resolver.py'):
                with open(path) as f:
                    found += [f'{os.path.relpath(path, ROOT)}:{i}' for i, line in enumerate(f, 1) if decides.search(line)]
    assert found == []
