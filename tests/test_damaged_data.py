"""Damaged data is one line naming the file, on every source (README, "Data"): found before training,
it is exit status 2 and nothing runs; found during training (a streamed record read in a worker), it
is that line and the run's last checkpoint is kept, so the same command resumes once the file is
restored.

Here: data tensorflow-datasets prepared (written by tests/prepared_tfds.py without TensorFlow), a
shard cut short, emptied, overwritten or missing, ``dataset_info.json`` missing or not JSON, a split
the dataset lacks, a record damaged inside a shard whose index is whole; CIFAR's decoded copy;
image files. The CIFAR archive's damage is in tests/test_data.py (test_bad_archives_...), a
PyTorch checkpoint's in tests/test_torch_parity.py (test_a_torch_checkpoint_..._is_damaged_...).
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from conftest import EXHAUSTIVE, write_cifar10_python_archive
from prepared_tfds import shard, write_prepared
from tiny_run import EXPERIMENT

from cnnzoo.data import DataError, load_dataset
from cnnzoo.data.tfds_data import tfds_sources

NAME = 'tinyset'  # no builder of tfds has this name: it is read from its files alone


@pytest.fixture
def prepared(tmp_path):
    """``(data_dir, version directory)`` of a 16x16 three-class dataset, 12 training and 6 test images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (18, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(18) % 3
    data_dir = tmp_path / 'tfds'
    root = write_prepared(data_dir, NAME, {'train': (images[:12], labels[:12]), 'test': (images[12:], labels[12:])},
                          ('a', 'b', 'c'))
    return str(data_dir), root


def _one_line(error, *needles):
    message = str(error.value)
    assert '\n' not in message, message
    for needle in needles:
        assert needle in message, message


def test_prepared_data_reads_back_without_tensorflow(prepared):
    data_dir, root = prepared
    # what an interrupted `tfds build` leaves beside a prepared version is not taken for damage
    incomplete = os.path.join(os.path.dirname(root), '1.0.1.incompleteAB12')
    os.makedirs(incomplete)
    shutil.copy(shard(root, 'train', 0), incomplete)
    train, held_out = tfds_sources(NAME, data_dir)
    assert (len(train), len(held_out), held_out.split, train.classes) == (12, 6, 'test', ('a', 'b', 'c'))
    assert train[7]['image'].shape == (16, 16, 3) and train[7]['label'] == 7 % 3


def _cut_short(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _emptied(path):
    path.write_bytes(b'')


def _overwritten(path):
    path.write_bytes(np.random.default_rng(1).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


@pytest.mark.parametrize('damage', [_cut_short, _emptied, _overwritten, os.remove],
                         ids=['cut short', 'emptied', 'overwritten', 'missing'])
def test_a_damaged_shard_is_one_line_naming_it_before_any_record_is_read(prepared, damage):
    import pathlib

    data_dir, root = prepared
    path = shard(root, 'train', 1)
    damage(pathlib.Path(path))
    with pytest.raises(DataError) as e:
        tfds_sources(NAME, data_dir)
    _one_line(e, path, 'missing' if damage is os.remove else 'damaged')


@pytest.mark.parametrize('damage', ['missing', 'not JSON', 'not a description'])
def test_a_missing_or_invalid_dataset_info_is_one_line_naming_it(prepared, damage):
    data_dir, root = prepared
    info = os.path.join(root, 'dataset_info.json')
    if damage == 'missing':
        os.remove(info)
    elif damage == 'not JSON':
        with open(info, 'w') as f:
            f.write('{"name": "tinyset", "splits": [')
    else:
        with open(info, 'w') as f:
            json.dump({'name': NAME, 'splits': 'everything'}, f)
    with pytest.raises(DataError) as e:
        tfds_sources(NAME, data_dir)
    _one_line(e, info, 'missing' if damage == 'missing' else 'not a readable dataset description')


def test_a_split_the_dataset_lacks_is_named_with_the_splits_it_has(prepared, tmp_path, capsys):
    """Not "not prepared ... no network": the dataset is prepared and has no such split. Through a
    run: exit status 2, that line, no run directory."""
    from cnnzoo.cli import main

    data_dir, _ = prepared
    with pytest.raises(DataError) as e:
        tfds_sources(NAME, data_dir, eval_split='validation')
    _one_line(e, f"tfds dataset {NAME} has no split 'validation'", 'config.data.eval_split', 'its splits: test, train')
    with pytest.raises(DataError) as e:
        tfds_sources(NAME, data_dir, train_split='train[:50%]+extra')
    _one_line(e, "no split 'extra'", 'config.data.train_split')
    capsys.readouterr()
    status = main(['train', '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'),
                   *_flags(**{'data.source': 'tfds', 'data.name': NAME, 'data.data_dir': data_dir,
                              'data.eval_split': 'validation'})])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "has no split 'validation'" in err[0], err
    assert not (tmp_path / 'run').exists()


def _flags(**extra):
    flags = {'data.augment': 'crop_flip', 'data.workers': '0', 'model.stage_sizes': '(1, 1, 1)',
             'training.batch_size': '4', 'training.eval_batch_size': '4', 'training.num_steps': '6',
             'training.eval_every_epochs': '100', 'training.checkpoint_every_steps': '3',
             'training.log_every_steps': '3', 'training.progress_bar': 'False'}
    flags.update(extra)
    return [f'--config.{k}={v}' for k, v in flags.items()]


def _damage_a_record(path):
    """Flips a byte inside the first record of an ArrayRecord shard: the index at its end stays
    whole (a run's checks before training pass), and reading that record fails."""
    raw = bytearray(pathlib.Path(path).read_bytes())
    raw[200] ^= 0xFF
    with open(path, 'wb') as f:
        f.write(bytes(raw))


def _damage_an_image(path):
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not the rest of a JPEG')


def test_a_record_damaged_inside_its_shard_is_one_line_naming_the_shard_when_it_is_read(prepared):
    """The shard's index is whole, so the checks before training pass; reading the record, in this
    process or in a grain worker (the same code), is one line naming the shard and the example."""
    from cnnzoo.data.streaming import Stream

    data_dir, root = prepared
    path = shard(root, 'test', 1)
    _damage_a_record(path)
    train, held_out = tfds_sources(NAME, data_dir)
    assert held_out[0]['label'] == 12 % 3  # the first shard is whole
    stream = Stream(train=train, eval=held_out, num_classes=3, class_names=train.classes, preset='crop_flip',
                    image_size=16, seed=0)
    with pytest.raises(DataError) as e:
        for _ in stream.iterate(stream.eval_dataset(2)):
            pass
    _one_line(e, path, 'is damaged', f'example 3 of {NAME}[test]')


@pytest.mark.slow  # two short runs each; the fast lane reads the damaged record above; tfds's runs in the
@pytest.mark.parametrize('source', [pytest.param('tfds', marks=EXHAUSTIVE), 'folder'])  # exhaustive tier
def test_damage_found_during_training_is_one_line_and_the_last_checkpoint_is_kept(source, prepared, tmp_path,
                                                                                    capsys):
    """A record of the evaluation split is damaged where only reading it can tell: the run trains,
    saves step 3, and the evaluation of step 6 meets the record (in a grain worker for tfds): one line
    naming the file, exit status 2, the checkpoint of step 3 kept; with the file restored, the same
    command resumes there."""
    from cnnzoo.cli import main
    from cnnzoo.data.sources import write_image_folder

    if source == 'tfds':
        data_dir, root = prepared
        damaged = shard(root, 'test', 0)
        flags = _flags(**{'data.source': 'tfds', 'data.name': NAME, 'data.data_dir': data_dir, 'data.workers': '1'})
        damage = _damage_a_record
    else:
        rng = np.random.default_rng(0)
        folder = tmp_path / 'folder'
        for split, n in (('train', 12), ('val', 6)):
            write_image_folder(rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.arange(n) % 3,
                               ('a', 'b', 'c'), str(folder / split))
        damaged = str(folder / 'val' / 'a' / '000000.jpg')
        flags = _flags(**{'data.source': 'folder', 'data.folder': str(folder)})
        damage = _damage_an_image
    kept = tmp_path / 'kept'
    shutil.copy(damaged, kept)
    damage(damaged)
    workdir = tmp_path / 'run'
    command = ['train', '--config', EXPERIMENT, '--workdir', str(workdir), *flags]
    capsys.readouterr()
    assert main(command) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and damaged in err[0], err
    assert sorted(os.listdir(workdir / 'checkpoints')) == ['3']
    shutil.copy(kept, damaged)
    assert main(command) == 0
    assert 'resum' in capsys.readouterr().out  # from the checkpoint of step 3


def test_a_damaged_decoded_copy_of_cifar_is_one_line_naming_it(tmp_path):
    """The copy an earlier run decoded (its archive since moved away), altered: its arrays are
    checked as an archive's are. A copy that cannot be opened at all is passed over by the search."""
    data_dir = tmp_path / 'data'
    archive = tmp_path / 'cifar-10-python.tar.gz'
    write_cifar10_python_archive(archive, per_batch=4, test=5)
    load_dataset('cifar10', archive=str(archive), data_dir=str(data_dir))
    archive.unlink()
    (cache,) = (data_dir / 'cnnzoo-cache').iterdir()
    with np.load(cache) as z:
        arrays = dict(z)
    offline = {'data_dir': str(data_dir), 'network_check': lambda: False}
    for key, value, needle in (('y_train', arrays['y_train'] + 10, 'labels reach'),
                               ('x_test', arrays['x_test'][:, :16], 'not (N, 32, 32, 3) uint8'),
                               ('names', arrays['names'][:3], 'names 3 classes')):
        np.savez(cache, **{**arrays, key: value})
        with pytest.raises(DataError) as e:
            load_dataset('cifar10', **offline)
        _one_line(e, str(cache), 'is damaged', needle)
    cache.write_bytes(cache.read_bytes()[:1000])
    with pytest.raises(DataError) as e:
        load_dataset('cifar10', **offline)
    _one_line(e, 'not found and no network')


@pytest.mark.parametrize('content', [b'', b'GIF89a and then nothing', bytes(range(256)) * 4],
                         ids=['empty', 'cut short', 'not an image'])
def test_a_damaged_image_file_is_one_line_naming_it(content, tmp_path):
    from cnnzoo.data import images as image_ops
    from cnnzoo.data.sources import folder_sources, write_image_folder

    for split in ('train', 'val'):
        write_image_folder(np.zeros((3, 8, 8, 3), np.uint8), np.arange(3), ('a', 'b', 'c'), str(tmp_path / split))
    bad = tmp_path / 'train' / 'b' / '000001.jpg'
    bad.write_bytes(content)
    train, _ = folder_sources(str(tmp_path))
    record = train[train.files.index(str(bad))]
    with pytest.raises(DataError) as e:
        image_ops.decode(record['image'], record['where'])
    _one_line(e, str(bad), 'cannot decode')


def test_reading_prepared_images_says_nothing_of_opencv(prepared):
    """tfds warns, in every process that decodes an image, that OpenCV is missing and pillow decodes
    instead; cnnzoo decodes with pillow everywhere, so a clean read says nothing."""
    import subprocess
    import sys

    data_dir, _ = prepared
    read = ('import tensorflow_datasets as tfds; '
            'print(tfds.data_source({name!r}, split="train", data_dir={dir!r})[0]["image"].shape)')
    ours = ('from cnnzoo.data.tfds_data import tfds_sources; '
            'print(tfds_sources({name!r}, {dir!r})[0][0]["image"].shape)')
    outputs = [subprocess.run([sys.executable, '-c', code.format(name=NAME, dir=data_dir)], capture_output=True,
                              text=True, timeout=300, check=True) for code in (read, ours)]
    assert all(out.stdout.strip() == '(16, 16, 3)' for out in outputs), outputs
    try:
        import cv2  # noqa: F401 - with OpenCV, tfds has nothing to say either way
    except ImportError:
        assert 'OpenCV is not installed' in outputs[0].stderr  # tfds' own reader says it
    assert outputs[1].stderr == '', outputs[1].stderr
