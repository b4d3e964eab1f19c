#!/usr/bin/env bash
# Gathers, on a machine with the package index, what scripts/gpu/run.sh needs on the GPU machine,
# into .gpu/ (git-ignored): the wheels for Python 3.12 manylinux x86_64 that the GPU image lacks,
# the CIFAR-10 pack and its decoder (copied, so nothing outside the checkout is needed there).
#
#     bash scripts/gpu/prepare.sh /path/to/cifar10_jpeg.npz /path/to/cifar10.py
#
# Then it checks that the tree plus .gpu stays under the 64 MiB that travel, and prints the call.
set -eu -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PACK=${1:?usage: bash scripts/gpu/prepare.sh CIFAR10_JPEG_NPZ CIFAR10_PY}
DECODER=${2:?usage: bash scripts/gpu/prepare.sh CIFAR10_JPEG_NPZ CIFAR10_PY}
mkdir -p "$ROOT/.gpu/wheels"
cp "$PACK" "$ROOT/.gpu/cifar10_jpeg.npz"
cp "$DECODER" "$ROOT/.gpu/cifar10.py"
# What the image lacks (.library/device/KINDS.md lists what it holds): the CIFAR path needs the
# first two; grain's streaming path the other four.
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$ROOT/.gpu/wheels" \
  ml-collections tensorboardX grain array-record cloudpickle portpicker
size=$(( $(cd "$ROOT" && git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$ROOT/.gpu" | cut -f1) ))
echo "travels: $((size / 1048576)) MiB of 64 MiB (tree + .gpu)"
[ "$size" -lt $((64 * 1048576)) ] || { echo "error: over 64 MiB: leave grain's wheels out" >&2; exit 1; }
echo 'the call, one stage per turn (about 6 minutes each):'
echo '  run(command="bash scripts/gpu/run.sh speed $OUT", carry=[".gpu"], timeout_s=420)'
