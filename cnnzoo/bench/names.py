"""The names ``cnnzoo compare-pytorch`` takes, without importing JAX or PyTorch (its ``--help`` and
its flag checks need them before anything heavy loads)."""

JAX_VARIANT_NAMES = ('jax-fp32', 'jax-bf16')

TORCH_VARIANTS = ('torch-eager-fp32', 'torch-eager-bf16-cl', 'torch-compile-fp32', 'torch-compile-bf16-cl')

DEFAULT_VARIANTS = ('jax-fp32', 'jax-bf16', 'torch-eager-fp32', 'torch-eager-bf16-cl', 'torch-compile-fp32')

DEFAULT_MODELS = ('resnet20', 'resnet18', 'vgg16_bn')
