"""A dataset in the layout tensorflow-datasets prepares, written without TensorFlow.

``write_prepared(data_dir, name, splits, classes)`` writes what ``tfds build --file_format=array_record``
would: ``<data_dir>/<name>/<version>/`` with ArrayRecord shards of serialized examples, the
``dataset_info.json`` that describes them (features, splits, each shard's length) and the feature
files. The examples are serialized by tensorflow-datasets' own feature classes and serializer, the
images encoded as PNG by pillow (tfds' own encoder needs TensorFlow), so ``tfds.builder`` and
``tfds.data_source`` read the result as they read a dataset tfds prepared itself.
"""

import os

import numpy as np


def write_prepared(data_dir, name, splits, classes, *, version='1.0.0', shards=2) -> str:
    """``splits``: ``{split: (images (N, H, W, C) uint8, labels (N,))}``, each written as ``shards``
    ArrayRecord files; returns the version directory."""
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter
    from google.protobuf import json_format
    from PIL import Image
    from tensorflow_datasets.core import example_serializer
    from tensorflow_datasets.core.proto import dataset_info_pb2

    root = os.path.join(str(data_dir), name, version)
    os.makedirs(root, exist_ok=True)
    shape = next(iter(splits.values()))[0].shape[1:]
    features = tfds.features.FeaturesDict({'image': tfds.features.Image(shape=shape),
                                           'label': tfds.features.ClassLabel(names=list(classes))})
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    info = dataset_info_pb2.DatasetInfo(name=name, version=version, file_format='array_record')
    for split, (images, labels) in splits.items():
        lengths = []
        for k, rows in enumerate(np.array_split(np.arange(len(images)), shards)):
            writer = ArrayRecordWriter(os.path.join(root, f'{name}-{split}.array_record-{k:05d}-of-{shards:05d}'),
                                       'group_size:1')
            for i in rows:
                image = images[i][..., 0] if images[i].shape[-1] == 1 else images[i]
                example = features.encode_example({'image': Image.fromarray(image), 'label': int(labels[i])})
                writer.write(serializer.serialize_example(example))
            writer.close()
            lengths.append(len(rows))
        entry = info.splits.add(name=split, shard_lengths=lengths, num_bytes=0)
        entry.filepath_template = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'
    info.features.CopyFrom(features.to_proto())
    with open(os.path.join(root, 'dataset_info.json'), 'w') as f:
        f.write(json_format.MessageToJson(info, sort_keys=True))
    features.save_config(root)
    return root


def shard(root, split, k=1) -> str:
    """The path of shard ``k`` of ``split`` in a version directory written by :func:`write_prepared`."""
    name = [f for f in os.listdir(root) if f'-{split}.array_record-{k:05d}-of-' in f]
    assert len(name) == 1, name
    return os.path.join(root, name[0])
