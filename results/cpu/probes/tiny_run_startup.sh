#!/usr/bin/env bash
# A tiny command-line run (the suite's subprocess kind: ResNet-8, 200 images, batch 40, 20 steps) four
# ways, each twice with a warm compilation cache, the second timed: as it was, with small programs in
# the persistent cache too, with PyTorch kept out of tensorboardX's import (what cnnzoo does since
# 392f0b8), and both. Usage: bash tiny_run_startup.sh ARCHIVE (a tiny cifar-10-python.tar.gz, e.g.
# tests/conftest.py's write_cifar10_python_archive). Run from the repository root.
set -euo pipefail
archive=$1; tmp=$(mktemp -d)
cat > "$tmp/with_torch.py" <<'PY'
import runpy, sys
import tensorboardX  # imported before cnnzoo does, so with PyTorch (as before 392f0b8)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
PY
run() {  # $1: label, $2: min compile time (1 = JAX's default), $3: 'torch' to import it as before
  local pre=(); [ "$3" = torch ] && pre=("$tmp/with_torch.py")
  for i in 1 2; do
    rm -rf "$tmp/w"
    /usr/bin/time -f "$1 run $i: %e s wall %U s user" env XLA_FLAGS=--xla_backend_optimization_level=0 \
      JAX_COMPILATION_CACHE_DIR="$tmp/cache-$2" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=$2 \
      python "${pre[@]}" scripts/train.py --config experiments/resnet20_cifar10.py --workdir "$tmp/w" \
      --config.data.source=archive --config.data.archive="$archive" --config.data.data_dir="$tmp/data" \
      --config.model.stage_sizes='(1, 1, 1)' --config.training.batch_size=40 --config.training.num_steps=20 \
      --config.training.checkpoint_every_steps=10 --config.training.progress_bar=False \
      --config.optimizer.learning_rate=0.01 --config.training.eval_batch_size=16 2>&1 | tail -1
  done
}
cat /proc/loadavg
run 'torch imported, cache >= 1 s' 1 torch
run 'torch imported, cache all' 0 torch
run 'no torch, cache >= 1 s' 1 none
run 'no torch, cache all' 0 none
cat /proc/loadavg
rm -rf "$tmp"
