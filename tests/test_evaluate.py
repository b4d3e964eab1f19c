"""``cnnzoo evaluate`` says which checkpoint it evaluated and why (a run without a best one)."""

import json
import shutil

from cnnzoo.cli.evaluate import evaluate_main
from cnnzoo.run.evaluate import describe_checkpoint, evaluate_checkpoint


def test_evaluate_names_the_best_checkpoint_only_when_best_holds_one(reference, tiny_cifar10, cache_dir, tmp_path,
                                                                     capsys):
    _, finished = reference
    result = evaluate_checkpoint(str(finished), which='best')
    assert result['checkpoint'].startswith(f'best (step {result["step"]}')
    workdir = tmp_path / 'run'
    shutil.copytree(finished, workdir)
    shutil.rmtree(workdir / 'best')  # it evaluated, but its best checkpoint is gone
    result = evaluate_checkpoint(str(workdir), which='best')
    assert result['checkpoint'] == 'latest (step 30; the run has no best checkpoint)'
    # What a run stopped before its first evaluation holds: checkpoints, no evaluation, no best.
    metrics = workdir / 'metrics.jsonl'
    metrics.write_text(''.join(line + '\n' for line in metrics.read_text().splitlines()
                               if json.loads(line)['split'] == 'train'))
    overrides = [f'--config.data.archive={tiny_cifar10}', f'--config.data.data_dir={cache_dir}']
    assert evaluate_main(['--workdir', str(workdir), *overrides]) == 0
    out = capsys.readouterr().out
    assert 'checkpoint latest (step 30; the run has no best checkpoint: it never evaluated)' in out, out
    assert '(best)' not in out and 'best (' not in out, out


def test_the_description_of_each_case():
    assert describe_checkpoint('best', 20, best_step=20, latest_step=30, evaluated=True).startswith('best (step 20')
    assert describe_checkpoint('best', 30, best_step=20, latest_step=30, evaluated=True) == (
        'latest (step 30; its best checkpoint (step 20) could not be restored)')
    assert describe_checkpoint('latest', 25, best_step=20, latest_step=30, evaluated=True) == (
        'latest (step 25; the checkpoint of step 30 could not be restored)')
    assert describe_checkpoint(12, 12, best_step=None, latest_step=30, evaluated=False) == 'step 12'
