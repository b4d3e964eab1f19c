"""ResNet-18 (torchvision's ImageNet layout) on an image folder of your own, streamed through grain.

The folder is in torchvision's ``ImageFolder`` layout: ``FOLDER/train/<class>/<image>`` and
``FOLDER/val/<class>/<image>`` (JPEG, PNG, ...; any size, grey or colour); classes are the
sub-folders in sorted order and the class count is the data's. Training crops are the ``imagenet``
preset at ``data.image_size`` (224 by default; smaller is faster on a CPU), then SGD with momentum
0.9, weight decay 1e-4, learning rate 0.1 with a cosine decay, batch 64.

A folder to try it on, made from CIFAR-10 (100 JPEGs a class for training, 20 for validation;
``--archive PATH`` names the archive, else it is found as a run finds CIFAR):

Run:
    python scripts/cifar_to_folder.py --out runs/cifar_folder
    python scripts/train.py --config experiments/resnet18_folder.py --workdir runs/resnet18_folder \
        --config.data.folder=runs/cifar_folder --config.data.image_size=64 --config.training.num_steps=20

Expected: on that 1,000-image folder (10 classes), 20 steps at 64x64 took 3 min 47 s on two busy
CPU cores (1 min 47 s of it start-up and compilation); the training loss, thrown up to 5-7 by the
learning rate of 0.1 in the first steps, came back to 3.0 by step 20, and the validation accuracy
was 15% at step 15 and 13% at step 20: near chance (10%) at this length. The point is the path,
not the number.
"""

from cnnzoo.config import default_config


def get_config():
    config = default_config()
    config.model.name = 'resnet18'
    config.data.source = 'folder'
    config.data.folder = ''  # --config.data.folder=PATH
    config.data.name = 'folder'
    config.data.loader = 'grain'
    config.data.augment = 'imagenet'
    config.training.batch_size = 64
    config.training.eval_batch_size = 100
    config.training.num_steps = 1000
    config.training.log_every_steps = 5
    config.training.checkpoint_every_steps = 200
    config.schedule.name = 'cosine'
    return config
