"""Training and evaluation speed of cnnzoo models in JAX and PyTorch, side by side in one process.

    python scripts/compare_pytorch.py --models resnet20 --batch-size 128 --steps 20 --out results/cpu/r20
    python scripts/compare_pytorch.py --variants jax-bf16,torch-eager-bf16-cl --batch-size 512   # a GPU

Prints a Markdown table and writes <out>.json (device, versions, command, load, flags, every
figure) and <out>.md. What is measured and how: the docstring of cnnzoo/benchmark.py.
"""
import argparse

from cnnzoo.benchmark import DEFAULT_MODELS, DEFAULT_VARIANTS, JAX_VARIANTS, TORCH_VARIANTS, compare


def comma_list(text):
    return [item for item in text.split(',') if item]


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', type=comma_list, default=list(DEFAULT_MODELS),
                        help='comma-separated registry names, run as their CIFAR adaptation (default: %(default)s)')
    parser.add_argument('--variants', type=comma_list, default=list(DEFAULT_VARIANTS),
                        help=f'comma-separated, from {",".join((*JAX_VARIANTS, *TORCH_VARIANTS))} '
                             '(default: %(default)s)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--steps', type=int, default=20, help='timed train (and eval) steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first; the first compiles')
    parser.add_argument('--rounds', type=int, default=5, help='the timed steps run interleaved in this many rounds')
    parser.add_argument('--out', default=None,
                        help='path prefix of the .json and .md written (default: results/<backend>/compare_pytorch_<time>)')
    args = parser.parse_args()
    try:
        compare(args.models, args.variants, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                rounds=args.rounds, out=args.out)
    except ValueError as e:
        parser.exit(2, f'error: {e}\n')
