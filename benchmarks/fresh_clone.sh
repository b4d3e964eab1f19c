#!/bin/bash
# The README's two commands from a fresh clone in a fresh venv, timed (issue 29.4):
#   1. install (`pip install -e .`) and the first command (one epoch of ResNet-20): install time,
#      size and package count, then process start -> first step, and -> result;
#   2. the test command is what `.ci/run` runs from a fresh clone (its own log).
# This machine has no internet beyond the package registries, so CIFAR-10 cannot come from its
# official server here: the run takes the archive the README's offline paragraph shows
# (--config.data.archive=PATH), and the download's own time is not part of these figures.
# Usage: bash benchmarks/fresh_clone.sh REPO ARCHIVE  (for example: /work/main /tmp/cifar/cifar-10-python.tar.gz)
set -u
repo=$1 archive=$2
work=$(mktemp -d /tmp/cnnzoo-fresh-XXXX)
git clone -q "$repo" "$work/cnnzoo" && cd "$work/cnnzoo" || exit 1
echo "clone of $(git log -1 --format='%h %s' | cut -c1-80)"
echo "loadavg: $(cat /proc/loadavg); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo)"
export CNNZOO_DATA_DIR=$work/data JAX_COMPILATION_CACHE_DIR=$work/xla_cache PIP_CACHE_DIR=$work/pip_cache
start=$(date +%s.%N)
python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . 2>&1 | grep -v -i "warning\|^ *$" | tail -3
installed=$(date +%s.%N)
printf 'install: %.0f s (an empty pip cache), %s on disk, %s packages\n' "$(echo "$installed - $start" | bc)" \
  "$(du -sh .venv | cut -f1)" "$(pip list 2>/dev/null | tail -n +3 | wc -l)"
cmd="python scripts/train.py --config experiments/resnet20_cifar10.py --workdir runs/resnet20_1epoch --config.training.num_epochs=1 --config.data.archive=$archive"
echo "\$ $cmd"
echo "loadavg: $(cat /proc/loadavg)"
start=$(date +%s.%N)
$cmd 2>&1 | python3 -u -c '
import sys, time
t0 = float(sys.argv[1]); first = None
for line in sys.stdin:
    now = time.time() - t0
    if first is None and "ran the first step" in line:
        first = now
    print(f"[{now:7.1f} s] {line}", end="", flush=True)
shown = "never" if first is None else f"at {first:.1f} s"
print(f"first step done {shown}, process exit at {time.time() - t0:.1f} s", flush=True)
' "$start"
echo "exit status ${PIPESTATUS[0]}; loadavg: $(cat /proc/loadavg)"
rm -rf "$work"
