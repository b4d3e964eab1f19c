"""CIFAR data: the three official archive layouts, every bad-input error, caching, tfds, augmentation."""

import gzip
import io
import os
import pickle
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import write_cifar10_python_archive

from cnnzoo.data import (
    AUGMENTATIONS,
    DataError,
    augment,
    epoch_permutation,
    expansion,
    load_dataset,
    normalize,
    online_preset,
    read_archive,
    take_batch,
)

# preset -> the copies augment_mode='expand' adds, for the presets that can expand a set
EXPANSION_COPIES = {e.name: e.meta['expand'] for e in AUGMENTATIONS.entries() if 'expand' in e.meta}

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared', 'data')


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _planes(x):
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def write_binary(path, x_train, y_train, x_test, y_test, *, record_extra=b''):
    with tarfile.open(path, 'w:gz') as tar:
        for i, (xs, ys) in enumerate(zip(np.array_split(x_train, 5), np.array_split(y_train, 5))):
            data = np.concatenate([ys[:, None].astype(np.uint8), _planes(xs)], axis=1).tobytes()
            _add(tar, f'cifar-10-batches-bin/data_batch_{i + 1}.bin', data + record_extra)
        data = np.concatenate([y_test[:, None].astype(np.uint8), _planes(x_test)], axis=1).tobytes()
        _add(tar, 'cifar-10-batches-bin/test_batch.bin', data)
        _add(tar, 'cifar-10-batches-bin/batches.meta.txt', b'\n'.join(b'c%d' % i for i in range(10)))


def write_cifar100(path, n_train=30, n_test=10, max_label=99):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_train, y_test = rng.integers(0, max_label + 1, n_train), rng.integers(0, max_label + 1, n_test)
    with tarfile.open(path, 'w:gz') as tar:
        for split, x, y in (('train', x_train, y_train), ('test', x_test, y_test)):
            _add(tar, f'cifar-100-python/{split}', pickle.dumps(
                {b'data': _planes(x), b'fine_labels': [int(v) for v in y],
                 b'coarse_labels': [int(v) // 5 for v in y]}))
        _add(tar, 'cifar-100-python/meta', pickle.dumps(
            {b'fine_label_names': [b'f%d' % i for i in range(100)], b'coarse_label_names': []}))
    return x_train, y_train, x_test, y_test


@pytest.fixture
def arrays(tmp_path):
    path = tmp_path / 'cifar-10-python.tar.gz'
    return path, write_cifar10_python_archive(path, per_batch=6, test=7)


def test_python_and_binary_layouts_read_back_exactly(arrays, tmp_path):
    path, (x_train, y_train, x_test, y_test) = arrays
    binary = tmp_path / 'cifar-10-binary.tar.gz'
    write_binary(binary, x_train, y_train, x_test, y_test)
    for archive in (path, binary):
        got = read_archive(str(archive), 'cifar10')
        for a, b in zip(got[:4], (x_train, y_train, x_test, y_test)):
            np.testing.assert_array_equal(a, b)
        assert got[0].dtype == np.uint8 and got[0].shape == (30, 32, 32, 3) and got[1].dtype == np.int32
    assert read_archive(str(path), 'cifar10')[4][0] == 'class0'
    assert read_archive(str(binary), 'cifar10')[4][9] == 'c9'


def test_the_training_set_is_counted_without_reading_an_image(arrays, tmp_path, monkeypatch):
    from cnnzoo.data import archives, datasets

    path, (x_train, y_train, x_test, y_test) = arrays
    binary = tmp_path / 'cifar-10-binary.tar.gz'
    write_binary(binary, x_train, y_train, x_test, y_test)
    c100 = tmp_path / 'cifar-100-python.tar.gz'
    write_cifar100(c100, n_train=23)
    load_dataset('cifar10', source='archive', archive=str(path), data_dir=str(tmp_path / 'cached'))  # a cache

    def refuse(*args, **kwargs):
        raise AssertionError('an image was read')

    monkeypatch.setattr(archives, 'planes_to_nhwc', refuse)
    monkeypatch.setattr(datasets, 'read_archive', refuse)
    monkeypatch.setattr(datasets, '_load_archive_cached', refuse)
    size = lambda name, archive, data_dir, **kw: datasets.train_set_size(  # noqa: E731
        name, source='archive', archive=str(archive), data_dir=str(tmp_path / data_dir), **kw)
    assert size('cifar10', path, 'fresh') == size('cifar10', binary, 'fresh') == size('cifar10', path, 'cached') == 30
    assert size('cifar100', c100, 'fresh') == 23
    assert size('cifar10', path, 'fresh', validation_size=5) == 25
    assert size('cifar10', tmp_path / 'absent.tar.gz', 'fresh') is None  # loading the data says what is wrong
    assert datasets.train_set_size('cifar10', source='tfds', data_dir=str(tmp_path)) == 50_000
    with pytest.raises(DataError, match='is a cifar100 archive'):
        size('cifar10', c100, 'fresh')


def test_cifar100_layout_reads_fine_labels(tmp_path):
    path = tmp_path / 'cifar-100-python.tar.gz'
    x_train, _y_train, _x_test, y_test = write_cifar100(path)
    ds = load_dataset('cifar100', source='archive', archive=str(path), data_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.train_images, x_train)
    np.testing.assert_array_equal(ds.test_labels, y_test)
    assert ds.num_classes == 100 and ds.class_names[3] == 'f3'


def _one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert '\n' not in message, message
    for needle in needles:
        assert needle in message, message


def test_bad_archives_give_one_line_errors(arrays, tmp_path):
    path, (x_train, y_train, x_test, y_test) = arrays
    not_tar = tmp_path / 'notes.tar.gz'
    not_tar.write_bytes(b'hello, this is not an archive')
    with pytest.raises(DataError) as e:
        read_archive(str(not_tar), 'cifar10')
    _one_line(e, 'notes.tar.gz', 'not a readable')

    truncated = tmp_path / 'truncated.tar.gz'
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError) as e:
        read_archive(str(truncated), 'cifar10')
    _one_line(e, 'truncated.tar.gz')

    missing = tmp_path / 'missing.tar.gz'
    with tarfile.open(path) as src, tarfile.open(missing, 'w:gz') as dst:
        for m in src.getmembers():
            if not m.name.endswith('data_batch_3'):
                dst.addfile(m, src.extractfile(m))
    with pytest.raises(DataError) as e:
        read_archive(str(missing), 'cifar10')
    _one_line(e, 'data_batch_3')

    wrong_size = tmp_path / 'wrong_size.tar.gz'
    write_binary(wrong_size, x_train, y_train, x_test, y_test, record_extra=b'\x00\x01')
    with pytest.raises(DataError) as e:
        read_archive(str(wrong_size), 'cifar10')
    _one_line(e, 'data_batch_1.bin', 'record')

    bad_label = tmp_path / 'bad_label.tar.gz'
    write_binary(bad_label, x_train, np.where(np.arange(len(y_train)) == 3, 12, y_train), x_test, y_test)
    with pytest.raises(DataError) as e:
        read_archive(str(bad_label), 'cifar10')
    _one_line(e, 'label 12', '0..9')

    c100 = tmp_path / 'cifar-100-python.tar.gz'
    write_cifar100(c100)
    with pytest.raises(DataError) as e:
        read_archive(str(c100), 'cifar10')
    _one_line(e, 'cifar100 archive', 'not cifar10')

    with pytest.raises(DataError) as e:
        load_dataset('cifar10', source='archive', archive=str(tmp_path / 'nope.tar.gz'), data_dir=str(tmp_path))
    _one_line(e, 'not found', 'nope.tar.gz')

    plain_gz = tmp_path / 'plain.gz'
    plain_gz.write_bytes(gzip.compress(b'x' * 100))
    with pytest.raises(DataError):
        read_archive(str(plain_gz), 'cifar10')


# Written by numpy 1.26.4 (Python 3.11): pickle.dumps({b'data': np.arange(6, dtype=np.uint8).reshape(2, 3),
# b'labels': [0, 1]}, protocol=2 and 5). Protocol 2 names numpy.core.multiarray._reconstruct, as the
# official archives (Python 2's cPickle) do; protocol 5 names numpy.core.numeric._frombuffer.
NUMPY1_PICKLES = {
    2: '80027d710028635f636f646563730a656e636f64650a7101580400000064617461710258060000006c6174696e317103867104'
       '527105636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e7374727563740a7106636e756d70790a6e64'
       '61727261790a71074b0085710868015801000000627109680386710a52710b87710c52710d284b014b024b0386710e636e75'
       '6d70790a64747970650a710f5802000000753171108988877111527112284b0358010000007c71134e4e4e4affffffff4aff'
       'ffffff4b007471146289680158060000000001020304057115680386711652711774711862680158060000006c6162656c73'
       '7119680386711a52711b5d711c284b004b0165752e',
    5: '80059597000000000000007d9428430464617461948c126e756d70792e636f72652e6e756d65726963948c0b5f66726f6d62'
       '756666657294939428960600000000000000000102030405948c056e756d7079948c0564747970659493948c02753194898887'
       '945294284b038c017c944e4e4e4affffffff4affffffff4b007494624b024b0386948c0143947494529443066c6162656c7394'
       '5d94284b004b0165752e',
}


@pytest.mark.parametrize('protocol', [0, 1, 2, 3, 4, 5])
def test_batches_pickled_by_numpy_1_and_2_at_every_protocol_read_back(protocol):
    from cnnzoo.data.archives import load_batch

    expected = np.arange(6, dtype=np.uint8).reshape(2, 3)
    batch = {b'data': expected, b'labels': [0, 1], b'batch_label': b'b', b'filenames': [b'x.png', b'y.png'],
             b'fortran': np.asfortranarray(expected)}
    back = load_batch('archive', 'data_batch_1', pickle.dumps(batch, protocol=protocol))
    assert back[b'labels'] == [0, 1] and back[b'filenames'] == [b'x.png', b'y.png'] and back[b'batch_label'] == b'b'
    np.testing.assert_array_equal(back[b'data'], expected)
    np.testing.assert_array_equal(back[b'fortran'], expected)
    if protocol in NUMPY1_PICKLES:
        raw = bytes.fromhex(NUMPY1_PICKLES[protocol])
        assert b'numpy.core.' in raw  # numpy 1.x's module names, which numpy 2 moved to numpy._core
        old = load_batch('archive', 'data_batch_1', raw)
        np.testing.assert_array_equal(old[b'data'], expected)
        assert old[b'data'].dtype == np.uint8 and old[b'labels'] == [0, 1]


class _WouldMakeADirectory:
    """Pickled, it asks the reader to call ``os.mkdir(path)``: what a crafted archive could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize('member', ['data_batch_2', 'batches.meta'])
def test_an_archive_whose_pickle_would_run_code_is_refused_and_nothing_runs(member, tmp_path, capsys):
    """The pickle of one member names a function (os.mkdir) instead of holding data: reading the
    archive, counting it, and a run given it all refuse it in one line, and the directory is never made."""
    from cnnzoo.cli import main
    from cnnzoo.data.archives import count_train

    made = tmp_path / 'made_by_the_archive'
    good = tmp_path / 'good.tar.gz'
    write_cifar10_python_archive(good, per_batch=4, test=3)
    crafted = tmp_path / 'cifar-10-python.tar.gz'
    with tarfile.open(good) as src, tarfile.open(crafted, 'w:gz') as dst:
        for m in src.getmembers():
            if m.name.endswith('/' + member):
                _add(dst, m.name, pickle.dumps({b'data': _WouldMakeADirectory(made), b'labels': [0],
                                                b'label_names': [b'x'] * 10}))
            else:
                dst.addfile(m, src.extractfile(m))
    with pytest.raises(DataError) as e:
        read_archive(str(crafted), 'cifar10')
    _one_line(e, str(crafted), member, 'refused', 'posix.mkdir')
    if member.startswith('data_batch'):
        with pytest.raises(DataError, match='refused'):
            count_train(str(crafted), 'cifar10')
    capsys.readouterr()
    status = main(['train', '--config', os.path.join(os.path.dirname(__file__), '..', 'experiments',
                                                     'resnet20_cifar10.py'),
                   '--workdir', str(tmp_path / 'run'), f'--config.data.archive={crafted}',
                   f'--config.data.data_dir={tmp_path / "data"}', '--config.training.num_steps=1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and 'refused' in err[0], err
    assert not made.exists()
    assert not (tmp_path / 'run').exists()


def test_second_load_comes_from_the_cache(arrays, tmp_path, monkeypatch):
    path, _ = arrays
    first = load_dataset('cifar10', source='archive', archive=str(path), data_dir=str(tmp_path))
    assert os.listdir(tmp_path / 'cnnzoo-cache')
    from cnnzoo.data import datasets

    def fail(*args, **kwargs):
        raise AssertionError('the archive was decoded again')

    monkeypatch.setattr(datasets, 'read_archive', fail)
    second = load_dataset('cifar10', source='archive', archive=str(path), data_dir=str(tmp_path))
    np.testing.assert_array_equal(first.train_images, second.train_images)
    assert first.mean == second.mean
    # a damaged cache is rebuilt, not fatal
    monkeypatch.undo()
    cache = tmp_path / 'cnnzoo-cache' / os.listdir(tmp_path / 'cnnzoo-cache')[0]
    cache.write_bytes(b'garbage')
    third = load_dataset('cifar10', source='archive', archive=str(path), data_dir=str(tmp_path))
    np.testing.assert_array_equal(first.test_images, third.test_images)


def test_archive_found_in_data_dir_and_stats(arrays, tmp_path):
    path, (x_train, *_) = arrays
    ds = load_dataset('cifar10', data_dir=str(path.parent))  # auto: finds the official file name
    np.testing.assert_allclose(ds.mean, (x_train / 255.0).mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(ds.std, (x_train / 255.0).std(axis=(0, 1, 2)), rtol=1e-9)
    assert ds.eval_split == 'test' and len(ds.test_images) == 7


def test_channel_stats_are_the_exact_integer_sums():
    """The histogram form gives the numbers of summing every pixel in integers, to the bit."""
    from cnnzoo.data.datasets import channel_stats

    images = np.random.default_rng(5).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    images[:100, ..., 2] = 255  # a skewed channel
    pixels = images.reshape(-1, 3).astype(np.int64)
    n = len(pixels)
    mean = pixels.sum(axis=0).astype(np.float64) / n
    std = np.sqrt(np.maximum((pixels ** 2).sum(axis=0).astype(np.float64) / n - mean ** 2, 0.0))
    assert channel_stats(images) == (tuple(float(v) / 255.0 for v in mean), tuple(float(v) / 255.0 for v in std))
    with pytest.raises(TypeError, match='uint8'):
        channel_stats(images.astype(np.float32))


def test_validation_split(arrays, tmp_path):
    path, (x_train, *_) = arrays
    a = load_dataset('cifar10', archive=str(path), data_dir=str(tmp_path), validation_size=5, seed=3)
    b = load_dataset('cifar10', archive=str(path), data_dir=str(tmp_path), validation_size=5, seed=3)
    assert a.eval_split == 'validation' and len(a.test_images) == 5 and len(a.train_images) == 25
    np.testing.assert_array_equal(a.test_images, b.test_images)
    rows = {img.tobytes() for img in x_train}
    held, kept = {i.tobytes() for i in a.test_images}, {i.tobytes() for i in a.train_images}
    assert held | kept == rows and not held & kept
    with pytest.raises(DataError, match='validation_size'):
        load_dataset('cifar10', archive=str(path), data_dir=str(tmp_path), validation_size=30)


def test_offline_without_archive_says_how_to_fix_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset('cifar10', data_dir=str(tmp_path), network_check=lambda: False)
    _one_line(e, 'no network', 'cifar-10-python.tar.gz', '--config.data.archive')
    with pytest.raises(DataError) as e:
        load_dataset('cifar10', source='archive', data_dir=str(tmp_path), network_check=lambda: False)
    _one_line(e, 'no network', '--config.data.archive')


@pytest.mark.slow  # tensorflow-datasets' mock data; the streamed tfds path is in the fast lane (test_streaming)
def test_tfds_path_on_mock_data(tmp_path):
    """The tensorflow-datasets source, on tfds's mock data: no download, no network, no TensorFlow."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = load_dataset('cifar10', source='tfds', data_dir=str(tmp_path))
    assert ds.train_images.shape == (12, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (12, 32, 32, 3) and ds.num_classes == 10
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.max() < 10
    assert len(ds.class_names) == 10


def test_cifar_that_tensorflow_datasets_prepared_is_read_without_tensorflow(tmp_path, monkeypatch):
    """data.source='tfds' for CIFAR: the ArrayRecord data tfds prepared in the data directory, read by
    tfds.data_source (no TensorFlow); 'auto' takes it before fetching the archive. Not prepared, and
    without TensorFlow to run tfds' builder, one line names the extra that brings it."""
    from prepared_tfds import write_prepared

    from cnnzoo.data import datasets, tfds_data

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (14, 32, 32, 3), dtype=np.uint8)
    y = np.arange(14) % 10
    names = [f'c{i}' for i in range(10)]
    write_prepared(tmp_path, 'cifar10', {'train': (x[:9], y[:9]), 'test': (x[9:], y[9:])}, names, version='3.0.2')
    ds = load_dataset('cifar10', source='tfds', data_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.train_images, x[:9])
    np.testing.assert_array_equal(ds.test_labels, y[9:])
    assert ds.class_names == tuple(names) and ds.train_labels.dtype == np.int32
    assert datasets.find_cifar('cifar10', data_dir=str(tmp_path), network_check=lambda: True).kind == 'tfds'
    monkeypatch.setattr(tfds_data, 'builder_available', lambda: False)
    with pytest.raises(DataError) as e:
        load_dataset('cifar100', source='tfds', data_dir=str(tmp_path / 'empty'))
    _one_line(e, 'cifar100', "pip install 'cnnzoo[tfds]'")


def _batch(n=8, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)), jnp.uint8)


@pytest.mark.parametrize('preset', AUGMENTATIONS.names())
def test_presets_are_deterministic_jitted_and_float(preset):
    images = _batch()
    fn = jax.jit(lambda rng, x: augment(rng, x, preset, mean=(0.5, 0.5, 0.5)))
    a, b = fn(jax.random.PRNGKey(0), images), fn(jax.random.PRNGKey(0), images)
    c = fn(jax.random.PRNGKey(1), images)
    assert a.shape == images.shape and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    if preset in ('none', 'imagenet'):  # imagenet crops and flips on the host (cnnzoo.data.images)
        np.testing.assert_array_equal(a, images / 255.0)
        np.testing.assert_array_equal(a, c)
    else:
        assert not np.array_equal(a, c)


def test_unknown_preset():
    with pytest.raises(ValueError, match='choose one of none'):
        augment(jax.random.PRNGKey(0), _batch(), 'mixup')


def test_crop_flip_is_a_window_of_the_padded_image():
    images = _batch(16)
    out = np.asarray(augment(jax.random.PRNGKey(2), images, 'crop_flip'))
    padded = np.pad(np.asarray(images) / 255.0, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for k in range(16):
        windows = [(padded[k, i:i + 32, j:j + 32], False) for i in range(9) for j in range(9)]
        windows += [(w[:, ::-1], True) for w, _ in windows]
        matches = [flip for w, flip in windows if np.allclose(w, out[k])]
        assert matches, f'image {k} is not a (flipped) crop of its padded input'
        flips += matches[0]
    assert 0 < flips < 16


def test_cutout_fills_one_clipped_16x16_square_with_the_mean():
    images = jnp.full((32, 32, 32, 3), 255, jnp.uint8)
    out = np.asarray(augment(jax.random.PRNGKey(3), images, 'cutout', mean=(0.25, 0.25, 0.25)))
    for k in range(32):
        cut = np.all(out[k] == 0.25, axis=-1) | np.all(out[k] == 0.0, axis=-1)  # mean fill, or crop padding
        filled = np.all(out[k] == 0.25, axis=-1)
        rows, cols = np.nonzero(filled)
        assert filled.sum() > 0 and rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16
        assert filled.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert cut.sum() < 32 * 32


def _expected_copy(key, images, preset, mean):
    x = augment(key, jnp.asarray(images), preset, mean=jnp.asarray(mean, jnp.float32))
    return np.round(np.asarray(x) * 255.0).astype(np.uint8)


@pytest.mark.parametrize('preset', EXPANSION_COPIES)
def test_expansion_is_the_originals_then_one_augmented_copy_per_stage(preset):
    images, mean = np.asarray(_batch(12, seed=4)), (0.4, 0.5, 0.6)
    key = jax.random.PRNGKey(7)
    out = expansion(key, images, preset, mean=mean)
    copies = EXPANSION_COPIES[preset]
    assert out.dtype == np.uint8 and out.shape == (12 * (1 + len(copies)), 32, 32, 3)
    np.testing.assert_array_equal(out[:12], images)
    for c, copy_preset in enumerate(copies):  # each copy: its preset's draws from fold_in(key, c), chunk 0
        expected = _expected_copy(jax.random.fold_in(jax.random.fold_in(key, c), 0), images, copy_preset, mean)
        np.testing.assert_array_equal(out[12 * (c + 1):12 * (c + 2)], expected)
        assert not np.array_equal(expected, images)
    np.testing.assert_array_equal(expansion(key, images, preset, mean=mean), out)
    if copies:
        assert not np.array_equal(expansion(jax.random.PRNGKey(8), images, preset, mean=mean), out)


def test_expansion_sizes_match_the_reports_100k_and_150k():
    # The student report's counts for CIFAR-10's 50k: crop+flip doubles it, colour+blur adds a third copy.
    assert {p: 50_000 * (1 + len(c)) for p, c in EXPANSION_COPIES.items()} == {
        'none': 50_000, 'crop_flip': 100_000, 'crop_flip_color_blur': 150_000, 'cutout': 100_000}


def test_expanded_training_applies_no_further_augmentation():
    import ml_collections

    data = ml_collections.ConfigDict({'augment': 'crop_flip_color_blur', 'augment_mode': 'online'})
    assert online_preset(data) == 'crop_flip_color_blur'
    data.augment_mode = 'expand'
    assert online_preset(data) == 'none'


def test_normalize():
    x = jnp.ones((1, 2, 2, 3)) * 0.5
    np.testing.assert_allclose(normalize(x, (0.5, 0.25, 0.0), (1.0, 0.5, 2.0))[0, 0, 0], [0.0, 0.5, 0.25])


def test_epoch_permutation_and_batches():
    p0, again, p1 = epoch_permutation(0, 0, 100), epoch_permutation(0, 0, 100), epoch_permutation(0, 1, 100)
    assert sorted(np.asarray(p0).tolist()) == list(range(100))
    np.testing.assert_array_equal(p0, again)
    assert not np.array_equal(p0, p1)
    assert not np.array_equal(p0, epoch_permutation(1, 0, 100))
    images = jnp.arange(100 * 2).reshape(100, 2)
    labels = jnp.arange(100)
    batch = jax.jit(take_batch, static_argnums=4)(images, labels, p0, 3, 10)
    np.testing.assert_array_equal(batch['label'], np.asarray(p0)[30:40])
    np.testing.assert_array_equal(batch['image'][:, 0], 2 * np.asarray(p0)[30:40])


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, 'cifar10_jpeg.npz')),
                    reason='needs ../shared/data (the real CIFAR-10 copy); the tiny archives above cover the code')
@pytest.mark.slow
def test_real_cifar10_binary_archive(tmp_path):
    """The shared real copy written in the official binary layout reads back pixel-exact (~30 s)."""
    import hashlib
    import importlib.util
    spec = importlib.util.spec_from_file_location('shared_cifar10', os.path.join(SHARED, 'cifar10.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x_train, y_train, x_test, y_test, names = module.load()
    path = tmp_path / 'cifar-10-binary.tar.gz'
    module.write_binary(str(path), x_train, y_train, x_test, y_test, names)
    ds = load_dataset('cifar10', source='archive', archive=str(path), data_dir=str(tmp_path))
    assert ds.train_images.shape == (50_000, 32, 32, 3) and ds.test_images.shape == (10_000, 32, 32, 3)
    digest = hashlib.sha256(ds.train_images.tobytes() + ds.test_images.tobytes()).hexdigest()
    assert digest == '5950db2d734da18b1478b8235a822a2c35f8d74c0fd7859f25e64ec0153923f9'  # shared/data/README.md
    assert ds.train_labels[:5].tolist() == [6, 9, 9, 4, 1] and ds.test_labels[:5].tolist() == [3, 8, 8, 0, 6]
    assert np.bincount(ds.train_labels).tolist() == [5000] * 10 and ds.class_names[0] == 'airplane'


def test_a_run_and_cifar_to_folder_find_cifar_through_one_search_which_finds_the_cached_copy(
        tmp_path, monkeypatch):
    """The archive an earlier run decoded was moved away: its cached copy in the data directory is
    found, by a run's loader and by ``cifar-to-folder`` alike, through the one ``find_cifar``."""
    from cnnzoo.data import datasets
    from cnnzoo.data.sources import cifar_to_folder

    data_dir, elsewhere = tmp_path / 'data', tmp_path / 'downloads'
    elsewhere.mkdir()
    archive = elsewhere / 'cifar-10-python.tar.gz'
    x_train, y_train, _, y_test = write_cifar10_python_archive(archive, per_batch=8, test=12)
    load_dataset('cifar10', archive=str(archive), data_dir=str(data_dir))  # a run with --config.data.archive
    archive.unlink()
    searches = []
    real = datasets.find_cifar
    monkeypatch.setattr(datasets, 'find_cifar', lambda *a, **k: searches.append(k['data_dir']) or real(*a, **k))
    offline = {'data_dir': str(data_dir), 'network_check': lambda: False}

    location = real('cifar10', **offline)
    assert location.kind == 'cache' and location.path.startswith(str(data_dir / 'cnnzoo-cache'))
    ds = load_dataset('cifar10', **offline)  # how a run reads data.source='auto' without an archive
    np.testing.assert_array_equal(ds.train_images, x_train)
    n_train, n_val, source = cifar_to_folder(None, str(tmp_path / 'out'), per_class_train=1, per_class_val=1,
                                             **offline)
    assert searches == [str(data_dir)] * 2  # both went through the one search
    assert 'decoded' in source and location.path in source
    classes = sorted(os.listdir(tmp_path / 'out' / 'train'))
    assert classes == [f'class{i}' for i in range(10)] and n_train == len(set(y_train.tolist()))
    assert n_val == len(set(y_test.tolist()))
    # The search order: an archive in the data directory comes before the cached copy.
    write_cifar10_python_archive(data_dir / 'cifar-10-python.tar.gz', per_batch=8, test=12, seed=1)
    assert real('cifar10', **offline).kind == 'archive'


def test_cifar_to_folder_command_reads_the_cached_copy_and_says_so(tmp_path, monkeypatch, capsys):
    from cnnzoo.cli.data import cifar_to_folder_main
    from cnnzoo.data import datasets

    archive = tmp_path / 'cifar-10-python.tar.gz'
    write_cifar10_python_archive(archive, per_batch=8, test=12)
    load_dataset('cifar10', archive=str(archive), data_dir=str(tmp_path / 'data'))
    archive.unlink()
    monkeypatch.setattr(datasets, 'network_available', lambda: False)
    out = tmp_path / 'folder'
    args = ['--out', str(out), '--per-class-train', '1', '--per-class-val', '1']
    assert cifar_to_folder_main([*args, '--data-dir', str(tmp_path / 'data')]) == 0
    err = capsys.readouterr().err
    assert err.startswith('reading cifar10 from the copy an earlier run decoded, '), err  # said before the work
    assert len(os.listdir(out / 'val')) == 10
    assert cifar_to_folder_main([*args, '--data-dir', str(tmp_path / 'empty')]) == 2  # nothing there: bad input
    assert '--archive FILE' in capsys.readouterr().err
