#!/usr/bin/env bash
# The CPU studies of results/studies/, as they were run (2 CPU cores, the real CIFAR-10 JPEG copy
# from ../shared/data decoded to the official python archive layout). Each sweep trains in
# $RUNS/<study>; afterwards the runs' config.json, metrics.jsonl and the sweep manifest are copied here
# (checkpoints and TensorBoard events are left out), and scripts/report.py rebuilds the report from them.
#
#   python ../shared/data/cifar10.py python /tmp/cifar/cifar-10-python.tar.gz
#   . .venv/bin/activate && RUNS=/tmp/studies bash benchmarks/studies.sh fig6|ablation|criteria [SWEEP FLAGS ...]
#
# Extra flags go to scripts/sweep.py (e.g. --only GLOB). The ablation ran its twelve points without
# the inverted bottleneck first (--only '*-standard,*-relu_before_add,*-square'): on two CPU cores
# XLA's depthwise convolution made one inverted-bottleneck epoch take about an hour. The column ran
# afterwards (--only '*-inverted_bottleneck') with the CPU forms of depthwise and 1x1 convolutions
# (cnnzoo/models/layers.py, commit d3060d7): 35-50 minutes a run on the shared cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/tmp/studies}
ARCHIVE=${ARCHIVE:-/tmp/cifar/cifar-10-python.tar.gz}
data=(--config.data.source=archive --config.data.archive="$ARCHIVE" --config.training.progress_bar=False)
study=$1; shift
case "$study" in
  fig6)  # He et al. 2016 Figure 6 in miniature: 2 epochs, evaluated every half epoch
    python scripts/sweep.py --config experiments/he2016_cifar10.py --workdir "$RUNS/he2016_fig6_cpu" \
      --only 'resnet20,plain20,resnet56,plain56' --seeds 0 "${data[@]}" \
      --config.training.num_epochs=2 --config.training.eval_every_epochs=0.5 "$@" ;;
  ablation)  # activation x residual form for resnet20, 1 epoch each
    python scripts/sweep.py --config experiments/resnet20_ablation.py --workdir "$RUNS/resnet20_ablation_cpu" \
      --seeds 0 "${data[@]}" "$@" ;;
  criteria)  # criteria x optimizers: ResNet-18, cross-entropy and squared error x sgd and adam, 120 steps
    # at batch 32 (the recipe's 128 took 20 s a step on the shared cores), evaluated on 1,000 held-out
    # training images at the middle and the end
    python scripts/sweep.py --config experiments/criteria_optimizers.py --workdir "$RUNS/criteria_optimizers_cpu" \
      --only 'resnet18-loss_cross_entropy-sgd,resnet18-loss_cross_entropy-adam-*,resnet18-loss_squared_error-sgd,resnet18-loss_squared_error-adam-*' \
      --seeds 0 "${data[@]}" --config.training.batch_size=32 --config.training.num_steps=120 \
      --config.data.validation_size=1000 --config.training.eval_every_epochs=0.04 \
      --config.training.log_every_steps=10 --config.training.eval_batch_size=500 "$@" ;;
  *) echo "usage: benchmarks/studies.sh fig6|ablation|criteria" >&2; exit 2 ;;
esac
