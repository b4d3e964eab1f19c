#!/bin/bash
# The default install (`pip install -e .`) of two source trees side by side, each into a fresh venv:
# wall time, size on disk (du -sh of the venv) and the packages it holds (pip list). Usage, from the
# repository root: benchmarks/install_footprint.sh BEFORE_REF AFTER_REF [ROUNDS]
# The trees are `git archive` copies of the two commits; rounds alternate before/after, so a cache
# or a busy machine favours neither. pip reads the machine's package indexes and its wheel cache as
# they are (both trees' wheels were installed here before: a warm cache).
set -u
before=$1 after=$2 rounds=${3:-2}
work=$(mktemp -d /tmp/cnnzoo-install-XXXX)
trap 'rm -rf "$work"' EXIT
for ref in "$before" "$after"; do
  mkdir -p "$work/src-$ref" && git archive "$ref" | tar -x -C "$work/src-$ref"
done
echo "python: $(python3 --version 2>&1), pip indexes: $(pip config list 2>/dev/null | tr '\n' ' ')"
echo "cores: $(nproc)"
for round in $(seq 1 "$rounds"); do
  for ref in "$before" "$after"; do
    venv="$work/venv-$ref-$round"
    echo "== round $round, $ref ($(git log -1 --format=%s "$ref" | cut -c1-80)), loadavg: $(cat /proc/loadavg)"
    start=$(date +%s.%N)
    python3 -m venv "$venv" && "$venv/bin/pip" install -q -e "$work/src-$ref" 2>&1 | grep -v 'is ignored' | grep -iv 'warning' | tail -3
    end=$(date +%s.%N)
    echo "install wall time: $(python3 -c "print(f'{$end - $start:.1f}')") s (venv creation included)"
    echo "size on disk: $(du -sh "$venv" | cut -f1)  ($(du -sb "$venv" | cut -f1) bytes)"
    echo "pip list | wc -l: $("$venv/bin/pip" list 2>/dev/null | wc -l) (2 header lines)"
    echo "tensorflow: $("$venv/bin/pip" list 2>/dev/null | grep -i -E '^(tensorflow|tensorflow[-_]cpu|keras) ' | tr -s ' ' | tr '\n' ';')"
    "$venv/bin/python" -c "import tensorflow_datasets, grain, jax, cnnzoo.data; print('imports ok')" 2>&1 | tail -1
    rm -rf "$venv"
  done
done
echo "loadavg at the end: $(cat /proc/loadavg)"
