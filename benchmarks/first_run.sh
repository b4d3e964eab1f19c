#!/bin/bash
# The README's first command (one epoch of ResNet-20), timed on this machine; the official archive
# is in a fresh data directory (found there as a newcomer's run finds it), compilation cache empty.
set -u
export CNNZOO_DATA_DIR=/tmp/h22_data JAX_COMPILATION_CACHE_DIR=/tmp/h22_jaxcache
rm -rf /tmp/h22_runs /tmp/h22_jaxcache
cmd="python scripts/train.py --config experiments/resnet20_cifar10.py --workdir /tmp/h22_runs/resnet20_cifar10 --config.training.num_epochs=1"
echo "\$ $cmd"; date -u; echo "loadavg: $(cat /proc/loadavg)"; nproc
start=$(date +%s)
$cmd
echo "exit status $?, elapsed $(( $(date +%s) - start ))s (process start to exit)"
date -u; echo "loadavg: $(cat /proc/loadavg)"
