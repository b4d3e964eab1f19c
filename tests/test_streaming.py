"""The streaming input path (cnnzoo.data.streaming): sources, presets, sharding, exact resume, and
the torchvision-checkpoint evaluation against the PyTorch twin.

Data: image folders generated here with pillow (a few dozen small JPEG and PNG files in three
classes, odd sizes, some grey), tfds ``mock_data`` for an image dataset (no network), the tiny CIFAR
archive of the suite streamed from memory, and the real CIFAR JPEGs (../shared/data) through the
folder source when they are there.
"""

import importlib.util
import json
import os
import signal
import time

import numpy as np
import pytest
from conftest import EXHAUSTIVE
from PIL import Image
from tiny_run import EXPERIMENT, PROCESSES, assert_bitwise_equal, run_script, tiny_overrides

from cnnzoo.data import DataError
from cnnzoo.data import images as image_ops
from cnnzoo.data.sources import ArraySource, FolderSource, folder_sources, write_image_folder
from cnnzoo.data.streaming import Stream, TrainBatches, default_workers

CLASSES = ('cat', 'dog', 'fox')


def make_folder(root, *, train=8, val=3, seed=0):
    """``root/{train,val}/{cat,dog,fox}/``: JPEGs and PNGs of random sizes (40-89 px), every fifth grey."""
    rng = np.random.default_rng(seed)
    for split, n in (('train', train), ('val', val)):
        for c, name in enumerate(CLASSES):
            directory = os.path.join(root, split, name)
            os.makedirs(directory, exist_ok=True)
            for i in range(n):
                w, h = (int(v) for v in rng.integers(40, 90, 2))
                pixels = np.clip(rng.integers(0, 120, (h, w, 3)) + 60 * c, 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels)
                image = image.convert('L') if i % 5 == 0 else image
                image.save(os.path.join(directory, f'{i:03d}.{"png" if i % 3 == 0 else "jpg"}'))
    return str(root)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp('folder'))


def coordinates(width, height):
    """An RGB image whose red channel is the column and green the row (mod 256): crops are readable."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x % 256, y % 256, np.zeros_like(x)], -1).astype(np.uint8))


# --- presets --------------------------------------------------------------------------------------

def test_eval_preset_is_torchvisions_resize_and_centre_crop_by_hand():
    # 320x256: the shorter side is already 256 (no resize); CenterCrop(224) starts at row 16, column 48.
    out = image_ops.to_array(image_ops.center_crop(image_ops.resize_shorter_side(coordinates(320, 256), 256), 224))
    assert out.shape == (224, 224, 3)
    assert out[0, 0, 0] == 48 and out[0, 0, 1] == 16 and out[-1, -1, 0] == (48 + 223) % 256 and out[-1, -1, 1] == 16 + 223
    # 300x200 -> shorter side 256, longer int(256 * 300 / 200) = 384; portrait the other way round.
    assert image_ops.resize_shorter_side(coordinates(300, 200), 256).size == (384, 256)
    assert image_ops.resize_shorter_side(coordinates(200, 301), 256).size == (256, int(256 * 301 / 200))
    # an odd margin: (233 - 224) / 2 = 4.5 rounds half to even (torchvision's round()) -> 4
    assert image_ops.to_array(image_ops.center_crop(coordinates(233, 224), 224))[0, 0, 0] == 4
    assert image_ops.eval_resize(224) == 256 and image_ops.eval_resize(299) == 342
    # smaller than the crop: zero-padded, centred
    small = image_ops.to_array(image_ops.center_crop(Image.new('RGB', (4, 2), (9, 9, 9)), 6))
    assert small.shape == (6, 6, 3) and small[2:4, 1:5].min() == 9 and small[0].max() == 0


def test_random_resized_crop_box_falls_back_to_the_clamped_centre_crop():
    # 400x50 with at least 90% of the area: every try is taller than 50 pixels, so the fallback:
    # the ratio 8 > 4/3 is clamped to a 67x50 window (round(50 * 4/3)) in the middle.
    box = image_ops.random_resized_crop_box(np.random.default_rng(0), 400, 50, scale=(0.9, 1.0))
    assert box == (0, (400 - 67) // 2, 50, 67)
    # a square image with scale and ratio 1: the whole image
    assert image_ops.random_resized_crop_box(np.random.default_rng(0), 60, 60, scale=(1, 1), ratio=(1, 1)) == (0, 0, 60, 60)


def test_random_resized_crops_stay_within_the_image_and_the_ranges():
    rng = np.random.default_rng(1)
    for _ in range(300):
        top, left, h, w = image_ops.random_resized_crop_box(rng, 500, 375)
        assert top >= 0 and top + h <= 375 and left >= 0 and left + w <= 500
        assert 0.08 * 0.9 <= h * w / (500 * 375) <= 1.0  # rounding to whole pixels
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_training_preset_with_the_whole_image_is_the_image_or_its_mirror():
    image = coordinates(48, 48)
    seen = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        # scale and ratio 1 on a square: the crop is the whole image and the resize an identity
        top, left, h, w = image_ops.random_resized_crop_box(np.random.default_rng(seed), 48, 48, scale=(1, 1),
                                                            ratio=(1, 1))
        assert (top, left, h, w) == (0, 0, 48, 48)
        box = image_ops.random_resized_crop_box(rng, 48, 48, scale=(1, 1), ratio=(1, 1))
        out = image_ops.resize(image.crop((box[1], box[0], box[1] + box[3], box[0] + box[2])), 48, 48)
        flipped = rng.random() < 0.5
        expected = image_ops.to_array(image)[:, ::-1] if flipped else image_ops.to_array(image)
        out = image_ops.to_array(out.transpose(Image.FLIP_LEFT_RIGHT) if flipped else out)
        np.testing.assert_array_equal(out, expected)
        seen.add(flipped)
    assert seen == {True, False}


def test_host_transform_is_deterministic_in_the_examples_position(folder):
    train, _ = folder_sources(folder)
    stream = Stream(train=train, eval=train, num_classes=3, class_names=CLASSES, preset='imagenet', image_size=24,
                    seed=3)
    a, b = stream.train_dataset(6), stream.train_dataset(6)
    for i in (0, 5):
        for key in ('image', 'label', 'index'):
            np.testing.assert_array_equal(a[i][key], b[i][key])
    assert a[0]['image'].shape == (6, 24, 24, 3) and a[0]['image'].dtype == np.uint8
    other = Stream(train=train, eval=train, num_classes=3, class_names=CLASSES, preset='imagenet', image_size=24,
                   seed=4).train_dataset(6)
    assert not np.array_equal(other[0]['index'], a[0]['index'])  # another seed, another order


# --- sources --------------------------------------------------------------------------------------

def test_folder_source_reads_torchvisions_layout(folder, tmp_path):
    train, val = folder_sources(folder)
    assert train.classes == CLASSES and val.classes == CLASSES and val.split == 'val'
    assert len(train) == 24 and len(val) == 9
    assert train.labels == sorted(train.labels)  # class by class, files sorted
    assert [os.path.basename(f) for f in train.files[:3]] == ['000.png', '001.jpg', '002.jpg']
    (tmp_path / 'train' / 'a').mkdir(parents=True)
    Image.new('RGB', (5, 7)).save(tmp_path / 'train' / 'a' / 'x.JPG')  # extensions compare without case
    (tmp_path / 'train' / 'a' / 'notes.txt').write_text('not an image')
    one = FolderSource(str(tmp_path), 'train')
    assert len(one) == 1 and one[0]['label'] == 0
    grey = image_ops.decode(train[0]['image'], 'x')  # file 000 of every class is grey
    assert grey.mode == 'RGB' and image_ops.to_array(grey).shape[-1] == 3


def test_folder_problems_are_one_line_errors(folder, tmp_path):
    make_folder(tmp_path, train=2, val=1)
    os.makedirs(tmp_path / 'train' / 'empty')
    with pytest.raises(DataError, match=r'class folder .*train/empty has no images') as e:
        folder_sources(str(tmp_path))
    assert '\n' not in str(e.value)
    os.rmdir(tmp_path / 'train' / 'empty')
    os.makedirs(tmp_path / 'val' / 'wolf')
    Image.new('RGB', (5, 5)).save(tmp_path / 'val' / 'wolf' / 'a.png')
    with pytest.raises(DataError, match='classes the training split lacks: wolf'):
        folder_sources(str(tmp_path))
    with pytest.raises(DataError, match='not found'):
        folder_sources(str(tmp_path / 'nowhere'))
    os.rename(tmp_path / 'val', tmp_path / 'held')
    with pytest.raises(DataError, match='no evaluation split'):
        folder_sources(str(tmp_path))


def test_a_corrupt_image_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    make_folder(tmp_path, train=4, val=2)
    bad = tmp_path / 'train' / 'dog' / '002.jpg'
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated JPEG
    train, _ = folder_sources(str(tmp_path))
    with pytest.raises(DataError, match=r'cannot decode .*dog/002\.jpg') as e:
        image_ops.decode(train[train.files.index(str(bad))]['image'], str(bad))
    assert '\n' not in str(e.value)
    # through the console command, in a run: exit status 2 and that one line, wherever the file falls
    from cnnzoo.cli.train import train_main

    capsys.readouterr()
    status = train_main(['--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'), *folder_flags(tmp_path),
                         '--config.training.num_steps=6'])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and 'cannot decode' in lines[0] and 'dog/002.jpg' in lines[0], err


needs_tfds = pytest.mark.skipif(importlib.util.find_spec('tensorflow_datasets') is None,
                                 reason='tensorflow-datasets is not installed (the GPU image lacks it)')


def folder_flags(root, **extra):
    flags = {'data.source': 'folder', 'data.folder': str(root), 'data.augment': 'imagenet', 'data.image_size': '32',
             'data.workers': '0', 'model.stage_sizes': '(1, 1, 1)', 'training.batch_size': '4',
             'training.eval_batch_size': '4', 'training.log_every_steps': '1', 'training.progress_bar': 'False',
             'training.checkpoint_every_steps': '3'}
    flags.update(extra)
    return [f'--config.{k}={v}' for k, v in flags.items()]


@needs_tfds
def test_tfds_image_dataset_through_mock_data_trains_a_few_steps(tmp_path, capsys):
    """mnist as tensorflow-datasets gives it (28x28 grey, read by tfds's ArrayRecord data source),
    under tfds.testing.mock_data: no file and no network is touched."""
    import tensorflow_datasets as tfds

    from cnnzoo.config import apply_overrides, load_config_file
    from cnnzoo.run.loop import train_and_evaluate

    overrides = [(f.split('=', 1)[0][len('--config.'):], f.split('=', 1)[1]) for f in folder_flags('', **{
        'data.source': 'tfds', 'data.name': 'mnist', 'data.data_dir': str(tmp_path / 'tfds'), 'data.augment': 'crop_flip',
        'data.image_size': '0', 'data.folder': '', 'training.num_steps': '4', 'training.eval_batch_size': '8'})]
    config = apply_overrides(load_config_file(EXPERIMENT), overrides)
    with tfds.testing.mock_data(num_examples=24):
        summary = train_and_evaluate(config, str(tmp_path / 'run'))
    assert summary['step'] == 4
    records = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    assert all(np.isfinite(r['loss']) for r in records)
    out = capsys.readouterr().out
    assert 'of 28x28 streamed' in out  # the size is the data's own (grey, made RGB)
    assert 'accuracy' in out and 'on 24 images' in out  # every mock example evaluated once


@needs_tfds
def test_unprepared_tfds_data_is_prepared_through_the_builder_or_refused_in_one_line(tmp_path, monkeypatch):
    """Data not prepared as ArrayRecord: with the network (here: said to answer) and TensorFlow (here:
    said to be installed), the builder prepares it (mock_data makes that a no-op) and the reader
    opens; without the network, or without TensorFlow (the default install), one line says how."""
    import tensorflow_datasets as tfds

    from cnnzoo.data import tfds_data
    from cnnzoo.data.tfds_data import TfdsSource

    real = tfds.data_source
    calls = []

    def first_not_prepared(*args, **kwargs):
        calls.append(kwargs.get('download'))
        if len(calls) == 1:
            raise FileNotFoundError('not prepared')
        return real(*args, **kwargs)

    with tfds.testing.mock_data(num_examples=6):
        monkeypatch.setattr(tfds, 'data_source', first_not_prepared)
        monkeypatch.setattr(tfds_data, 'builder_available', lambda: True)
        source = TfdsSource('mnist', 'train', str(tmp_path), network_check=lambda: True)
        assert len(source) == 6 and calls == [False, False] and source.num_classes == 10
        monkeypatch.setattr(tfds, 'data_source', lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError('gone')))
        with pytest.raises(DataError, match=r'not prepared as ArrayRecord .* no network: prepare it with `tfds build mnist') as e:
            TfdsSource('mnist', 'train', str(tmp_path), network_check=lambda: False)
        assert '\n' not in str(e.value)
        monkeypatch.setattr(tfds_data, 'builder_available', lambda: False)
        with pytest.raises(DataError, match=r"builder, which needs TensorFlow: pip install 'cnnzoo\[tfds\]'") as e:
            TfdsSource('mnist', 'train', str(tmp_path), network_check=lambda: True)
        assert '\n' not in str(e.value)


def test_real_cifar_jpegs_through_the_folder_source(tmp_path):
    from conftest import SHARED_PACK

    if not os.path.exists(SHARED_PACK):
        pytest.skip('the real CIFAR-10 JPEG copy (../shared/data) is not on this machine')
    pack = np.load(SHARED_PACK)
    names = [str(n) for n in pack['class_names']]
    raw, offsets, labels = pack['train_jpeg'], pack['train_offsets'], pack['train_labels']
    for i in range(60):  # the pack's own JPEG bytes, as files
        directory = tmp_path / 'train' / names[labels[i]]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f'{i:05d}.jpg').write_bytes(raw[offsets[i]:offsets[i + 1]].tobytes())
    (tmp_path / 'val').mkdir()
    train = FolderSource(str(tmp_path), 'train')
    assert len(train) == 60 and set(train.classes) <= set(names)
    stream = Stream(train=train, eval=train, num_classes=len(train.classes), class_names=train.classes,
                    preset='none', image_size=32, seed=0)
    batch = stream.eval_dataset(20)[0]  # the evaluation order is the source's
    np.testing.assert_array_equal(batch['index'], np.arange(20))
    for i in (0, 19):  # decoded as PIL decodes the file, nothing resized
        np.testing.assert_array_equal(batch['image'][i], np.asarray(Image.open(train.files[i]).convert('RGB')))
    assert batch['image'].shape == (20, 32, 32, 3) and batch['mask'].all()


@pytest.mark.parametrize('overrides, message', [
    ({'data.augment': 'imagenet'}, "augment='imagenet' crops on the host"),
    ({'data.loader': 'grain', 'training.num_seeds': 2}, 'num_seeds=2'),
    ({'data.loader': 'grain', 'data.augment_mode': 'expand'}, "augment_mode='expand'"),
    ({'data.loader': 'grain', 'data.validation_size': 100}, 'data.eval_split'),
    ({'data.source': 'folder'}, 'needs --config.data.folder'),
    ({'data.name': 'imagenette'}, "source='auto'"),
    ({'data.source': 'tfds', 'data.name': 'imagenette', 'data.loader': 'device'}, 'use --config.data.loader=grain'),
    ({'data.workers': -2}, 'data.workers'),
    ({'data.loader': 'grain', 'data.image_size': 16, 'model.name': 'inception_v3'}, 'at least 299x299'),
])
def test_streaming_keys_are_checked_up_front(overrides, message):
    from cnnzoo.config import ConfigError, load_config_file
    from cnnzoo.run.validation import check_config

    config = load_config_file(EXPERIMENT)
    with pytest.raises(ConfigError, match=message) as e:
        for key, value in overrides.items():
            section, name = key.split('.')
            config[section][name] = value
        check_config(config)
    assert '\n' not in str(e.value)


# --- sharding and resume --------------------------------------------------------------------------

def array_stream(n=24, *, process_index=0, process_count=1, workers=0, preset='imagenet', size=16):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 20, 20, 3), dtype=np.uint8)
    source = ArraySource(images, np.arange(n) % 3, classes=CLASSES)
    return Stream(train=source, eval=source, num_classes=3, class_names=CLASSES, preset=preset, image_size=size,
                  seed=0, workers=workers, process_index=process_index, process_count=process_count)


def test_two_process_shares_cover_every_example_once_per_epoch_and_make_the_one_process_batches():
    n, batch = 24, 8  # 3 global batches an epoch
    one = array_stream(n).train_dataset(batch)
    shares = [array_stream(n, process_index=p, process_count=2).train_dataset(batch) for p in (0, 1)]
    for epoch in range(2):
        seen = []
        for b in range(epoch * 3, epoch * 3 + 3):
            parts = [share[b] for share in shares]
            assert all(len(part['index']) == batch // 2 for part in parts)
            seen += [int(i) for part in parts for i in part['index']]
            # side by side, the two shares are the one-process batch: same examples in the same
            # order (the device presets draw by position), same crops
            for key in ('index', 'image', 'label'):
                np.testing.assert_array_equal(np.concatenate([part[key] for part in parts]), one[b][key])
        assert sorted(seen) == list(range(n)), f'epoch {epoch}'
    assert not np.array_equal(one[0]['index'], one[3]['index'])  # each epoch its own order


def test_eval_batches_are_padded_masked_and_split_over_processes():
    shares = [array_stream(10, process_index=p, process_count=2).eval_dataset(4) for p in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 3  # ceil(10 / 4) batches of 2 per process
    indices = [int(i) for share in shares for b in range(3) for i, m in zip(share[b]['index'], share[b]['mask'])
               if m]
    assert sorted(indices) == list(range(10))
    assert sum(int(share[b]['mask'].sum()) for share in shares for b in range(3)) == 10


def take(batches, k):
    return [next(batches) for _ in range(k)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in ('image', 'label', 'index'):
            np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(y[key]))


def test_iterator_state_resumes_exactly_with_workers_and_with_another_worker_count():
    with_workers = array_stream(workers=2)
    batches = TrainBatches(with_workers, 4, 0, None)
    take(batches, 3)
    saved = json.loads(json.dumps(batches.state()))  # what the checkpoint holds
    expected = take(batches, 4)
    batches.close()
    assert saved['batch'] == 3 and saved['workers'] == 2 and saved['grain']
    again = TrainBatches(with_workers, 4, 3, saved)  # grain's own state, the same workers
    assert_same_batches(take(again, 4), expected)
    again.close()
    rebuilt = TrainBatches(array_stream(workers=0), 4, 3, saved)  # another worker count: rebuilt at batch 3
    assert_same_batches(take(rebuilt, 4), expected)
    with pytest.raises(DataError, match='holds the data iterator of batch 3'):
        TrainBatches(array_stream(workers=0), 4, 5, saved)


def test_the_stream_reads_only_a_few_batches_ahead_of_its_consumer():
    """grain's default read-ahead, 500 elements, would be 500 whole batches here (gigabytes of
    ImageNet crops in every reading process: benchmarks/read_ahead.py)."""
    from cnnzoo.data.streaming import read_options

    reads = []

    class Counted(ArraySource):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    images = np.zeros((400, 20, 20, 3), np.uint8)
    stream = Stream(train=Counted(images, np.arange(400) % 3, classes=CLASSES), eval=None, num_classes=3,
                    class_names=CLASSES, preset='imagenet', image_size=16, seed=0)
    batches = TrainBatches(stream, 4, 0, None)
    next(batches)
    time.sleep(0.5)  # time for hundreds of batches at this size
    options = read_options(0)
    assert options.prefetch_buffer_size == options.num_threads + 1
    assert len(reads) <= 4 * (options.prefetch_buffer_size + 1), len(reads)
    batches.close()
    # in each of several worker processes: the cores shared out, and one batch ready beyond them
    cores = default_workers()
    assert [read_options(w).num_threads for w in (1, cores, 2 * cores)] == [cores, 1, 1]
    assert all(read_options(w).prefetch_buffer_size == read_options(w).num_threads + 1 for w in (1, 2, 3))


def test_iterator_state_of_two_processes_resumes_in_one_and_back_in_the_one_process_order():
    one = TrainBatches(array_stream(), 8, 0, None)
    expected = take(one, 6)[3:]
    one.close()
    for before, after in ((2, 1), (1, 2)):
        first = TrainBatches(array_stream(process_count=before), 8, 0, None)
        take(first, 3)
        saved = json.loads(json.dumps(first.state()))
        assert saved['processes'] == before
        shares = [TrainBatches(array_stream(process_index=p, process_count=after), 8, 3, saved) for p in range(after)]
        got = [take(share, 3) for share in shares]
        joined = [{k: np.concatenate([g[b][k] for g in got]) for k in ('image', 'label', 'index')} for b in range(3)]
        assert_same_batches(joined, expected)


def streamed_overrides(tiny_cifar10, cache_dir, **extra):
    return tiny_overrides(tiny_cifar10, cache_dir, **{'data.loader': 'grain', 'data.workers': '0', **extra})


@pytest.fixture(scope='module')
def streamed_reference(tiny_cifar10, cache_dir, tmp_path_factory):
    """The tiny run of tests/tiny_run.py, its CIFAR streamed through grain from memory, uninterrupted."""
    from cnnzoo.config import apply_overrides, load_config_file
    from cnnzoo.run.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp('streamed_reference')
    config = apply_overrides(load_config_file(EXPERIMENT), streamed_overrides(tiny_cifar10, cache_dir))
    return train_and_evaluate(config, str(workdir)), workdir


@pytest.mark.slow  # a killed subprocess and two runs; the iterator's resume under other workers is in the fast lane
@pytest.mark.exhaustive  # and a streamed run killed and resumed in the suite (its process group, below)
def test_streamed_run_killed_then_resumed_with_other_workers_is_bitwise_identical(streamed_reference, tiny_cifar10,
                                                                                 cache_dir, tmp_path):
    summary, reference_dir = streamed_reference
    assert summary['step'] == 30 and [r['step'] for r in summary['evals']] == [10, 20, 30]
    code, out = run_script(tmp_path, streamed_overrides(tiny_cifar10, cache_dir, **{'data.workers': '1'}),
                           signal_at_step=13, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL, out
    assert 'streamed by 1 worker' in out
    from cnnzoo.config import apply_overrides, load_config_file
    from cnnzoo.run.loop import train_and_evaluate

    config = apply_overrides(load_config_file(EXPERIMENT), streamed_overrides(tiny_cifar10, cache_dir))
    resumed = train_and_evaluate(config, str(tmp_path))  # no workers now: the iterator is rebuilt
    assert resumed['step'] == 30
    assert_bitwise_equal(resumed['state'].checkpoint_items(), summary['state'].checkpoint_items())

    def records(directory):
        return [{k: v for k, v in json.loads(line).items() if k != 'images_per_sec'}
                for line in open(os.path.join(directory, 'metrics.jsonl'))]

    assert records(tmp_path) == records(reference_dir)


@pytest.mark.xdist_group(PROCESSES)  # see tiny_run.PROCESSES
@pytest.mark.slow  # three two-process runs of about half a minute each; the shares themselves are tested above
def test_two_processes_with_two_devices_each_train_the_one_process_streamed_run(tiny_cifar10, cache_dir, tmp_path):
    """Each process reads its share of every global batch and places it on its two devices: the
    four-device run is the one-device run up to the order of float sums (as on the device path,
    tests/test_scale.py, whose tolerances these are). A checkpoint of either resumes in the other
    (a scheduler giving back fewer or more machines): the iterator is rebuilt at the checkpoint's
    batch, in the one-process order, and the run ends as the one-process run does."""
    import jax
    from test_scale import ONE_STEP, _launch, rel_diff, rewind
    from tiny_run import free_port

    from cnnzoo.config import apply_overrides, load_config_file
    from cnnzoo.run.loop import train_and_evaluate

    overrides = streamed_overrides(tiny_cifar10, cache_dir, **{'training.num_steps': '4', 'training.num_epochs': '0',
                                                               'training.checkpoint_every_steps': '2'})
    config = apply_overrides(load_config_file(EXPERIMENT), overrides)
    reference = jax.tree_util.tree_leaves(train_and_evaluate(config, str(tmp_path / 'one'))['state'].params)
    worker = os.path.join(os.path.dirname(__file__), 'distributed_worker.py')

    def two_processes(workdir, name):
        port = free_port()
        procs = [_launch([worker, str(tmp_path / f'{name}{i}.npz')], workdir, overrides, port, i) for i in range(2)]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        assert 'streamed by 0 worker' in outputs[0] and '4 cpu device(s)' in outputs[0]
        copies = [np.load(tmp_path / f'{name}{i}.npz') for i in range(2)]
        for key in copies[0].files:  # every device copy in both processes: the same bits
            np.testing.assert_array_equal(copies[0][key], copies[1][key])
        return outputs[0], [copies[0][f'{i}_0'] for i in range(len(reference))]

    _, four = two_processes(tmp_path / 'run', 'params')
    diff = rel_diff(reference, four)
    print(f'streamed: 2 processes x 2 devices against 1 process x 1 device, 4 steps: {diff:.2e}')
    assert diff < 10 * ONE_STEP

    rewind(tmp_path / 'run', tmp_path / 'fewer', 2)  # two processes' checkpoint, one process resumes
    fewer = train_and_evaluate(config, str(tmp_path / 'fewer'))
    diff = rel_diff(reference, jax.tree_util.tree_leaves(fewer['state'].params))
    print(f'streamed: 2 processes resumed at step 2 by 1 process: {diff:.2e}')
    assert diff < 10 * ONE_STEP  # steps 3-4 move the parameters by 9e-4: other batches would not stay within 1e-5

    rewind(tmp_path / 'one', tmp_path / 'more', 2)  # one process's checkpoint, two processes resume
    out, more = two_processes(tmp_path / 'more', 'more')
    assert 'resuming at step 2' in out, out
    diff = rel_diff(reference, more)
    print(f'streamed: 1 process resumed at step 2 by 2 processes x 2 devices: {diff:.2e}')
    assert diff < 10 * ONE_STEP


# --- torchvision checkpoints ----------------------------------------------------------------------

@pytest.mark.slow  # a twin trained in PyTorch and evaluated twice; the conversions are in tests/test_torch_parity.py
def test_torch_checkpoint_evaluation_on_a_folder_agrees_with_the_pytorch_twin(folder, tmp_path, capsys):
    import torch

    from cnnzoo.torch.models import create_torch_model
    from cnnzoo.torch.pipeline import eval_transform, open_image

    # A twin trained a little on the folder's training images (in PyTorch), so that its predictions
    # differ between images and its BatchNorm statistics are its own: agreement is then a real test.
    torch.manual_seed(0)
    twin = create_torch_model('resnet18', num_classes=3)
    train, _ = folder_sources(folder)
    transform = eval_transform('imagenet', 48)
    x = torch.stack([transform(open_image(train[i]['image'])) for i in range(len(train))])
    y = torch.tensor(train.labels)
    optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)
    twin.train()
    for _ in range(8):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(x), y).backward()
        optimizer.step()
    path = tmp_path / 'resnet18.pth'
    torch.save(twin.state_dict(), path)
    flags = folder_flags(folder, **{'model.name': 'resnet18', 'model.stage_sizes': '(2, 2, 2, 2)',
                                    'data.image_size': '48', 'training.eval_batch_size': '3'})
    from cnnzoo.config import apply_overrides, load_config_file
    from cnnzoo.run.evaluate import evaluate_torch_checkpoint

    config = apply_overrides(load_config_file(EXPERIMENT), [f[len('--config.'):].split('=', 1) for f in flags])
    r = evaluate_torch_checkpoint(config, str(path))
    assert r['count'] == 9 and r['top1_agreement'] == 1.0 and r['max_logit_difference'] < 1e-4, r
    assert r['distinct_predictions'] >= 2, r  # an agreement of predictions that are not all one class
    assert r['accuracy'] == r['torch_accuracy']
    # the console command prints those figures; a classifier of another class count is one line
    from cnnzoo.cli.evaluate import evaluate_main

    args = ['--config', EXPERIMENT, '--torch-checkpoint', str(path), *flags]
    assert evaluate_main(args) == 0
    out = capsys.readouterr().out
    assert 'on 9 images' in out and 'top-1 agreement 100.00%' in out, out
    torch.save(create_torch_model('resnet18', num_classes=5).state_dict(), tmp_path / 'five.pth')
    args[args.index(str(path))] = str(tmp_path / 'five.pth')
    assert evaluate_main(args) == 2  # a file that does not fit: bad input (README, "Exit statuses")
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'has 5 outputs, the data 3 classes' in err, err


def test_write_image_folder_round_trips_through_the_folder_source(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    write_image_folder(images, [0, 1, 2, 0, 1, 2], CLASSES, str(tmp_path / 'train'))
    source = FolderSource(str(tmp_path), 'train')
    assert source.classes == CLASSES and source.labels == [0, 0, 1, 1, 2, 2]


# --- what grain's workers leave in /dev/shm ---------------------------------------------------------

needs_dev_shm = pytest.mark.skipif(not os.path.isdir('/dev/shm') or not os.path.isdir('/proc'),
                                   reason='POSIX shared memory is listed in /dev/shm on Linux only')

STREAM_CHILD = '''
import contextlib, sys
import numpy as np
from cnnzoo.data.sources import ArraySource
from cnnzoo.data.streaming import Stream
from cnnzoo.data.workers import owner_prefix
from cnnzoo.errors import DataError, RunError


class Source(ArraySource):
    """Example ``bad`` cannot be read (a corrupt image, as a folder's)."""

    bad = -1

    def __getitem__(self, i):
        if i == self.bad:
            raise DataError(f'cannot decode example {i}')
        return super().__getitem__(i)


def main(batches_to_take, bad):
    images = np.random.default_rng(0).integers(0, 255, (24, 20, 20, 3), dtype=np.uint8)
    source = Source(images, np.arange(24) % 3, classes=('a', 'b', 'c'))
    source.bad = bad
    stream = Stream(train=source, eval=source, num_classes=3, class_names=('a', 'b', 'c'), preset='imagenet',
                    image_size=16, seed=0, workers=2)
    print(owner_prefix(), flush=True)
    try:
        with contextlib.closing(stream.train_iterator(4, start=0, place=lambda b: b)) as batches:
            for k in range(batches_to_take):
                next(batches)
                print(f'batch {k}', flush=True)
    except (DataError, RunError) as e:
        print(f'error: {e}', flush=True)
        sys.exit(1)


if __name__ == '__main__':
    main(int(sys.argv[1]), int(sys.argv[2]))
'''


def shm_entries(prefix):
    return sorted(e for e in os.listdir('/dev/shm') if e.removeprefix('sem.').startswith(prefix + '-'))


def data_workers(pid):
    """``{index: pid}`` of the data workers of process ``pid`` (they name themselves cnnzoo-data-<index>)."""
    workers = {}
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                comm, rest = f.read().split(' (', 1)[1].rsplit(') ', 1)
        except (OSError, ValueError, IndexError):
            continue
        if int(rest.split()[1]) == pid and comm.startswith('cnnzoo-data-'):
            workers[int(comm.rsplit('-', 1)[1])] = int(entry)
    return workers


def wait_for_exit(pids, timeout=60):
    """Waits (without polling) until processes that are not this one's children have ended."""
    import select

    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            assert select.select([fd], [], [], timeout)[0], f'process {pid} still runs'
        finally:
            os.close(fd)


@needs_dev_shm
# 4-12 s each: the fast lane kills a worker (its stream's end releases the segments as a finished one's
# does), the suite ends it as it should too, the exhaustive tier kills a group (below) and fails it
@pytest.mark.parametrize('ending', [pytest.param('finished', marks=pytest.mark.slow), 'worker SIGKILL',
                                    *(pytest.param(e, marks=EXHAUSTIVE)
                                      for e in ('corrupt example', 'group SIGKILL', 'parent SIGKILL'))])
def test_workers_leave_nothing_in_dev_shm_however_the_stream_ends(tmp_path, ending):
    """Two workers' batches and semaphores are named for the process that reads them; a finished,
    failed or worker-killed stream unlinks every one (and the resource tracker has nothing to report);
    after a SIGKILL, which nothing can follow, the next start's remove_orphans removes them all."""
    import subprocess
    import sys

    from cnnzoo.data.workers import remove_orphans

    script = tmp_path / 'stream_child.py'
    script.write_text(STREAM_CHILD)
    take, bad = (6, -1) if ending == 'finished' else (10 ** 6, 13 if ending == 'corrupt example' else -1)
    proc = subprocess.Popen([sys.executable, str(script), str(take), str(bad)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        prefix = proc.stdout.readline().strip()
        lines = []
        while ending in ('worker SIGKILL', 'parent SIGKILL', 'group SIGKILL'):
            lines.append(proc.stdout.readline())
            if lines[-1].startswith('batch 2'):
                break
        workers = data_workers(proc.pid)
        if ending not in {'finished', 'corrupt example'}:
            assert sorted(workers) == [0, 1], workers
            named = shm_entries(prefix)  # while it runs: its queues' semaphores carry its name
            assert any(e.startswith('sem.') for e in named), (prefix, os.listdir('/dev/shm'))
        if ending == 'worker SIGKILL':
            os.kill(workers[1], signal.SIGKILL)
        elif ending == 'parent SIGKILL':
            proc.kill()
        elif ending == 'group SIGKILL':
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_for_exit(workers.values())
    lines = [line.strip() for line in ''.join(lines).splitlines() + out.splitlines() if line.strip()]
    if ending in ('parent SIGKILL', 'group SIGKILL'):
        assert proc.returncode == -signal.SIGKILL
        if ending == 'group SIGKILL':  # the resource tracker was killed too: all that it held is left
            left = shm_entries(prefix)  # batches and semaphores, all named for the run
            assert any(e.startswith('sem.') for e in left) and any(not e.startswith('sem.') for e in left), left
        remove_orphans()  # what the next run's start does
    else:
        assert 'Traceback' not in err and 'leaked' not in err, err
        if ending == 'finished':
            assert proc.returncode == 0 and lines[-1] == 'batch 5', (lines, err)
        elif ending == 'corrupt example':
            assert proc.returncode == 1 and lines[-1] == 'error: cannot decode example 13', (lines, err)
        else:
            assert proc.returncode == 1, (lines, err)
            assert lines[-1] == 'error: data worker 1 of 2 died (killed by signal 9); run the same command to resume'
    assert shm_entries(prefix) == []


def test_remove_orphans_removes_only_the_entries_of_cnnzoo_processes_gone_from_this_pid_namespace(tmp_path):
    import subprocess
    import sys

    from cnnzoo.data.workers import owner_prefix, remove_orphans

    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True,
                          check=True)
    dead = owner_prefix(int(gone.stdout))
    namespace = int(dead.split('-')[1])
    keep = [f'{owner_prefix()}-0_0a1b2c3d', f'sem.{owner_prefix()}-x1y2z3w4',  # this process: alive
            f'cnnzoo-{namespace + 1}-{gone.stdout.strip()}-0_0a1b2c3d',  # another namespace's: cannot tell
            'psm_0a1b2c3d', 'sem.mp-x1y2z3w4', 'cnnzoo-notes']
    remove = [f'{dead}-0_0a1b2c3d', f'{dead}-12_99aa00bb', f'sem.{dead}-abcd_123']
    for name in keep + remove:
        (tmp_path / name).write_bytes(b'')
    assert sorted(remove_orphans(str(tmp_path))) == sorted(remove)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert remove_orphans(str(tmp_path / 'missing')) == []


@needs_dev_shm
@pytest.mark.slow  # two short runs of scripts/train.py with two workers: 90 s on two shared cores
def test_a_streamed_run_killed_with_its_process_group_and_resumed_leaves_dev_shm_as_it_found_it(tmp_path):
    """What a scheduler does to a preempted job: SIGKILL to the whole process group (the resource
    tracker included), then the same command again. The resumed run removes what the killed one left,
    and leaves nothing of its own."""
    import subprocess
    import sys

    from tiny_run import TRAIN

    from cnnzoo.data.workers import owner_prefix

    make_folder(tmp_path / 'data', train=8, val=3)
    flags = folder_flags(tmp_path / 'data', **{'data.workers': '2', 'training.num_steps': '8',
                                                'training.checkpoint_every_steps': '2'})
    cmd = [sys.executable, TRAIN, '--config', EXPERIMENT, '--workdir', str(tmp_path / 'run'), *flags]

    def cnnzoo_entries(*pids):
        return [e for pid in pids for e in shm_entries(owner_prefix(pid))]

    killed = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        assert cnnzoo_entries(killed.pid) == []  # the count it starts with (of the names this test can own)
        for line in killed.stdout:
            if line.startswith('step 3/'):
                os.killpg(killed.pid, signal.SIGKILL)
                break
        killed.communicate(timeout=120)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
    assert killed.returncode == -signal.SIGKILL
    left = cnnzoo_entries(killed.pid)
    assert any(e.startswith('sem.') for e in left) and any(not e.startswith('sem.') for e in left), left
    resumed = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert 'Traceback' not in err and 'leaked' not in err, err  # (it resumes if the kill let a checkpoint land)
    assert cnnzoo_entries(killed.pid, resumed.pid) == []


def test_the_input_benchmark_counts_the_cores_the_reading_may_use():
    """A reading process decodes in several threads (read_options): per core, the rate is divided by
    the cores they may use, not by the worker count alone."""
    from cnnzoo.bench.input import input_rates

    lines = []
    (row,) = input_rates(array_stream(48), 4, [0], batches=3, warmup=1, log=lines.append)
    cores = default_workers()  # without workers, this process reads in a thread per core
    assert row['workers'] == 0 and row['reading_cores'] == cores and row['timed_batches'] == 3
    assert row['images_per_sec_per_core'] == pytest.approx(row['images_per_sec'] / cores)
    assert row['images_per_sec_per_worker'] == pytest.approx(row['images_per_sec'])
    assert lines[0].startswith('0 worker(s): ') and f'per core of the {cores} reading' in lines[0]
