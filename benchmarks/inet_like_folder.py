"""An ImageNet-like image folder for the input-pipeline benchmark, from the CIFAR-10 archive.

    python benchmarks/inet_like_folder.py --archive /tmp/cifar/cifar-10-python.tar.gz --out /tmp/inet_like

ImageNet's training JPEGs average about 400x350 pixels and 110 KB. No ImageNet is on these machines,
so each image here is a CIFAR-10 image scaled up to 500x375 (bicubic), with Gaussian noise (sigma 20)
for the fine detail a scaled-up 32x32 image lacks, saved as JPEG at quality 90: the decoder and the
crop then do the work a photograph of that size asks for. 64 images a class for training, 8 for
validation. Prints the mean file size. Kept with the results it produced; not a tool.
"""
import argparse
import os

import numpy as np
from PIL import Image

from cnnzoo.data.archives import read_archive


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--archive', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--per-class', type=int, default=64)
    a = p.parse_args()
    x, y, xt, yt, names = read_archive(a.archive, 'cifar10')
    rng = np.random.default_rng(0)
    sizes = []
    for split, images, labels, n in (('train', x, y, a.per_class), ('val', xt, yt, 8)):
        for c, name in enumerate(names):
            os.makedirs(os.path.join(a.out, split, name), exist_ok=True)
            for i in np.flatnonzero(labels == c)[:n]:
                big = np.asarray(Image.fromarray(images[i]).resize((500, 375), Image.BICUBIC), np.float32)
                big = np.clip(big + rng.normal(0, 20, big.shape), 0, 255).astype(np.uint8)
                path = os.path.join(a.out, split, name, f'{i:05d}.JPEG')
                Image.fromarray(big).save(path, quality=90)
                sizes.append(os.path.getsize(path))
    print(f'{len(sizes)} JPEGs of 500x375 in {a.out}, mean {np.mean(sizes) / 1024:.0f} KB')


if __name__ == '__main__':
    main()
