#!/usr/bin/env bash
# One GPU stage of issues 19 and 28 on a bare machine with no network (the project's GPU machine):
#
#     bash scripts/gpu/run.sh STAGE OUTDIR        STAGE: speed | tta | seeds | he2016 | resume
#
# From the repository root, after scripts/gpu/prepare.sh filled .gpu/ (carried with the call):
# installs the wheels in .gpu/wheels beside the image's packages (pip --no-index --no-deps --target),
# runs the project from this tree (PYTHONPATH), writes the CIFAR-10 archive from the pack, prints the
# machine (nvidia-smi, versions, jax.devices()), refuses in one line where JAX sees no GPU, runs the
# stage (benchmarks/gpu/stages.py) and leaves at most 8 files in OUTDIR: <stage>.log, env.txt,
# <stage>.json, <stage>.md and the stage's tars (scripts/gpu/README.md lists them).
#
# CNNZOO_GPU_SMOKE=1: the CPU smoke mode (tests/test_gpu_command.py): no GPU needed, a few steps of
# tiny sizes; CNNZOO_GPU_ARCHIVE=PATH uses that archive instead of decoding the pack. Several
# stages, comma-separated, are allowed there, each in OUTDIR/<stage>/.
set -u -o pipefail

if [ $# -ne 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  echo "usage: bash scripts/gpu/run.sh STAGE OUTDIR   (STAGE: speed, tta, seeds, he2016 or resume; scripts/gpu/README.md)"
  [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && exit 0
  exit 2
fi
STAGES=$1
OUT=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PACK_DIR=$ROOT/.gpu
SMOKE=${CNNZOO_GPU_SMOKE:-0}
PY=${PYTHON:-python3}

for stage in ${STAGES//,/ }; do
  case $stage in speed|tta|seeds|he2016|resume) ;; *) echo "error: unknown stage '$stage'; choose speed, tta, seeds, he2016 or resume" >&2; exit 2 ;; esac
done
if [ "$SMOKE" != 1 ] && [[ $STAGES == *,* ]]; then
  echo "error: one stage per call on the GPU machine (each fits one 6-minute turn); got '$STAGES'" >&2
  exit 2
fi

mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/cnnzoo-gpu.XXXXXX")
ENV_TXT=$OUT/env.txt

# 1. the project from this tree, and the wheels the image lacks beside the image's own packages.
if compgen -G "$PACK_DIR/wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SCRATCH/site" \
    "$PACK_DIR"/wheels/*.whl || { echo "error: the wheels in .gpu/wheels did not install (above)" >&2; exit 1; }
  export PYTHONPATH=$ROOT:$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}
else
  [ "$SMOKE" = 1 ] || echo "note: no wheels in .gpu/wheels: the image's packages must hold them all"
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 CNNZOO_DATA_DIR=$SCRATCH/data

# 2. the machine, the versions and the devices, before anything long.
{
  echo "date: $(date -u +%FT%TZ); host: $(uname -srm); load: $(cat /proc/loadavg 2>/dev/null)"
  echo "tree: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo 'not a git checkout') $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
  echo "command: bash scripts/gpu/run.sh $*"
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  "$PY" - <<'EOF'
import importlib.metadata as md, sys
print('python', sys.version.split()[0], sys.executable)
for name in ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda12-plugin', 'flax', 'optax', 'orbax-checkpoint', 'chex',
             'ml-collections', 'tensorboardX', 'grain', 'numpy', 'torch', 'torchvision'):
    try:
        print(f'{name} {md.version(name)}')
    except md.PackageNotFoundError:
        pass
try:
    import jax
    print('jax.devices():', jax.devices())
except Exception as e:  # shown, then the refusal below says what it means
    print('jax.devices() failed:', type(e).__name__, str(e).splitlines()[0] if str(e) else '')
EOF
} 2>&1 | tee "$ENV_TXT"

BACKEND=$("$PY" -c 'import jax; print(jax.default_backend())' 2>/dev/null)
if [ "$BACKEND" != gpu ] && [ "$SMOKE" != 1 ]; then
  echo "error: no GPU: JAX's backend is '${BACKEND:-none}' (CNNZOO_GPU_SMOKE=1 runs the CPU smoke mode)" >&2
  rm -rf "$SCRATCH"
  exit 2
fi

# 3. the CIFAR-10 archive, from the pack and the decoder copied beside it by prepare.sh.
ARCHIVE=${CNNZOO_GPU_ARCHIVE:-}
if [ -z "$ARCHIVE" ]; then
  if [ ! -f "$PACK_DIR/cifar10_jpeg.npz" ] || [ ! -f "$PACK_DIR/cifar10.py" ]; then
    echo "error: .gpu/cifar10_jpeg.npz and .gpu/cifar10.py are missing: run scripts/gpu/prepare.sh and carry .gpu" >&2
    exit 2
  fi
  ARCHIVE=$SCRATCH/cifar-10-python.tar.gz
  "$PY" "$PACK_DIR/cifar10.py" python "$ARCHIVE" || { echo "error: decoding the pack failed (above)" >&2; exit 1; }
fi

# 4. the stage(s): the log of each beside its files; at most 8 files per folder, the rest in a tar.
status=0
for stage in ${STAGES//,/ }; do
  dir=$OUT
  [[ $STAGES == *,* ]] && dir=$OUT/$stage && mkdir -p "$dir" && cp "$ENV_TXT" "$dir/"
  extra=()
  [ "$SMOKE" = 1 ] && extra+=(--smoke)
  "$PY" "$ROOT/benchmarks/gpu/stages.py" "$stage" "$dir" --archive "$ARCHIVE" --work "$SCRATCH/$stage" "${extra[@]}" \
    2>&1 | tee "$dir/$stage.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { echo "error: stage $stage exited with status $rc (its log: $dir/$stage.log)" >&2; status=$rc; }
  # Anything past 7 files goes into one more tar, so that the folder comes back whole.
  mapfile -t files < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
  if [ "${#files[@]}" -gt 8 ]; then
    keep=("$stage.log" env.txt "$stage.json" "$stage.md")
    rest=()
    for f in "${files[@]}"; do [[ " ${keep[*]} " == *" $f "* ]] || rest+=("$f"); done
    (cd "$dir" && tar czf "${stage}_rest.tar.gz" "${rest[@]}" && rm -rf "${rest[@]}")
  fi
done
[[ $STAGES == *,* ]] && rm -f "$ENV_TXT"
rm -rf "$SCRATCH"
exit $status
