#!/bin/bash
# Time to refuse a warm-up in epochs against a run in steps, on the real CIFAR-10 python archive
# (made by /work/shared/data/cifar10.py), with a fresh data dir (no cache) and then with the cache.
# Usage: bash benchmarks/warmup_early.sh ARCHIVE
set -u
ARCHIVE=$1
DATA=$(mktemp -d)
echo "loadavg: $(cat /proc/loadavg)"
for what in "no cache" "no cache, again"; do
  rm -rf "$DATA"/*
  start=$(date +%s.%N)
  python scripts/train.py --config experiments/resnet20_cifar10.py --workdir "$DATA/run" \
      --config.data.source=archive --config.data.archive="$ARCHIVE" --config.data.data_dir="$DATA" \
      --config.training.num_steps=100 --config.schedule.warmup_epochs=1
  echo "exit $? after $(echo "$(date +%s.%N) - $start" | bc) s ($what)"
done
python -c "from cnnzoo.data import load_dataset; load_dataset('cifar10', source='archive', archive='$ARCHIVE', data_dir='$DATA')"
start=$(date +%s.%N)
python scripts/train.py --config experiments/resnet20_cifar10.py --workdir "$DATA/run" \
    --config.data.source=archive --config.data.archive="$ARCHIVE" --config.data.data_dir="$DATA" \
    --config.training.num_steps=100 --config.schedule.warmup_epochs=1
echo "exit $? after $(echo "$(date +%s.%N) - $start" | bc) s (cache of the archive present)"
echo "loadavg: $(cat /proc/loadavg)"
rm -rf "$DATA"
