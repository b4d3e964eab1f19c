# The first 40 SGD steps (lr 0.1, momentum 0.9, wd 5e-4, batch 128, no augmentation, no warm-up) of
# VGG-11-BN (CIFAR head) in PyTorch, with cnnzoo's initialisation (twin) and with PyTorch's default
# one (torchdefault). Usage: python results/cpu/vgg11_bn_first_steps_torch.py twin|torchdefault 0.1
import sys, numpy as np, torch, jax
sys.path.insert(0, '.')
torch.set_num_threads(1)
from cnnzoo.models import create_model
from cnnzoo.torch import create_torch_model
from cnnzoo.data import load_dataset
ds = load_dataset('cifar10', source='archive', archive='/tmp/cifar-10-python.tar.gz', data_dir='/tmp/cz')
x = torch.tensor(((ds.train_images[:128*40]/255.0 - ds.mean)/ds.std).transpose(0,3,1,2), dtype=torch.float32)
y = torch.tensor(ds.train_labels[:128*40].astype(np.int64))
init = sys.argv[1]
torch.manual_seed(0)
m = create_torch_model('vgg11_bn', num_classes=10, head='cifar')
if init == 'torchdefault':
    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.reset_parameters()
opt = torch.optim.SGD(m.parameters(), lr=float(sys.argv[2]), momentum=0.9, weight_decay=5e-4)
m.train()
for i in range(40):
    xb, yb = x[i*128:(i+1)*128], y[i*128:(i+1)*128]
    loss = torch.nn.functional.cross_entropy(m(xb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
    if i % 5 == 4: print(init, sys.argv[2], i+1, round(loss.item(), 3), flush=True)
