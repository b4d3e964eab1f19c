"""One process of a multi-process run for tests/test_scale.py: joins the others as ``cnnzoo train``
does, trains through the loop, and saves the copies of the final parameters its own devices hold.

    python tests/distributed_worker.py OUT.npz --config ... --workdir ... --coordinator H:P \
        --num-processes N --process-id I [--config.KEY=VALUE ...]
"""

import sys

import jax
import numpy as np

from cnnzoo.cli.train import join_processes, parse_train_args
from cnnzoo.run.loop import train_and_evaluate


def main(argv):
    out, rest = argv[0], argv[1:]
    config, args = parse_train_args(rest)
    summary = train_and_evaluate(config, args.workdir, join=lambda: join_processes(args))
    leaves = jax.tree_util.tree_leaves(summary['state'].params)
    np.savez(out, **{f'{i}_{d}': np.asarray(shard.data)
                     for i, leaf in enumerate(leaves) for d, shard in enumerate(leaf.addressable_shards)})
    print(f'process {jax.process_index()}: {sum(len(leaf.addressable_shards) for leaf in leaves[:1])} local '
          f'copies of the parameters saved to {out}')


if __name__ == '__main__':
    main(sys.argv[1:])
