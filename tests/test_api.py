"""cnnzoo from Python (cnnzoo.api; README, "From Python (notebooks)"): the README's example runs as
written, on the tiny archive, with an interrupt in its first train call: the run saves, the call
returns a summary that says so with the previous SIGINT handler back, and the same call resumes to
the uninterrupted run's state bit for bit; load gives the run's model and variables. A second
interrupt acts at once and leaves the run resumable from its last checkpoint. In a notebook the progress is
one live display; on a terminal and in a file it is what it always was."""

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
from tiny_run import ROOT, TOTAL_STEPS, assert_bitwise_equal, tiny_config, tiny_overrides

import cnnzoo
from cnnzoo.config import apply_overrides
from cnnzoo.run.progress import Progress, notebook_display

README = os.path.join(ROOT, 'README.md')


def readme_python_example() -> str:
    """The Python block of the README's section "From Python (notebooks)"."""
    with open(README, encoding='utf-8') as f:
        text = f.read()
    section = text.split('\n## From Python (notebooks)\n', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```python\n(.*?)```', section, flags=re.DOTALL)
    assert len(blocks) == 1, blocks
    return blocks[0]


def interrupting_feed(at_input: int, *, interrupts: int = 1):
    """``cnnzoo.run.loop.make_feed`` whose first feed sends this process SIGINT ``interrupts`` times
    (each once the one before was handled) as it hands over input number ``at_input`` (that of step
    ``at_input + 1``): a notebook's stop button at a step known in advance. Later feeds (a resumed
    run's) are the real ones."""
    from cnnzoo.run import loop

    real, made = loop.make_feed, []

    def make_feed(*args, **kwargs):
        feed = real(*args, **kwargs)
        made.append(feed)
        if len(made) > 1:
            return feed
        next_input = feed.next

        def next_interrupted(step):
            if step == at_input:
                for _ in range(interrupts):
                    handler = signal.getsignal(signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(10**6):  # until Python has run the handler (it replaces itself)
                        if signal.getsignal(signal.SIGINT) is not handler:
                            break
            return next_input(step)

        feed.next = next_interrupted
        return feed

    return make_feed


def test_the_readme_example_stops_at_an_interrupt_resumes_exactly_evaluates_and_loads(
        reference, tiny_cifar10, cache_dir, tmp_path, monkeypatch, capsys):
    """The README's Python block, run as written from a directory of its own (its experiments/ the
    repository's), its config made the tiny run's (the reference run, whose programs are compiled
    already), and SIGINT sent as step 13 of the first train call starts."""
    from cnnzoo.run import loop
    from cnnzoo.run.evaluate import restore_run
    from cnnzoo.run.feeds import eval_logits

    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(ROOT, 'experiments'), tmp_path / 'experiments')
    real_get_config, real_train, summaries = cnnzoo.get_config, cnnzoo.train, []

    def tiny_get_config(*args, **kwargs):  # the README's config, then the tiny archive, model and length
        return apply_overrides(real_get_config(*args, **kwargs), tiny_overrides(tiny_cifar10, cache_dir))

    def recorded_train(*args, **kwargs):
        handler = signal.getsignal(signal.SIGINT)
        summaries.append(real_train(*args, **kwargs))
        assert signal.getsignal(signal.SIGINT) is handler  # the call's own handler is gone with it
        return summaries[-1]

    monkeypatch.setattr(cnnzoo, 'get_config', tiny_get_config)
    monkeypatch.setattr(cnnzoo, 'train', recorded_train)
    monkeypatch.setattr(loop, 'make_feed', interrupting_feed(12))
    namespace = {'__name__': '__readme__'}
    exec(compile(readme_python_example(), README, 'exec'), namespace)  # noqa: S102 - the README's own code
    out = capsys.readouterr().out

    stopped, finished = summaries
    assert stopped.stopped and stopped.stopped_by == 'SIGINT' and (stopped.step, stopped.checkpoint) == (13, 13)
    assert "TrainSummary('runs/r20_notebook': stopped by SIGINT at step 13/30, checkpoint of step 13 saved" \
        in repr(stopped)
    assert 'stopped by SIGINT at step 13; checkpoint of step 13 in runs/r20_notebook' in out, out
    assert not finished.stopped and finished.step == TOTAL_STEPS and 'finished at step 30/30' in out
    expected = reference[0]
    assert_bitwise_equal(finished.state.checkpoint_items(), expected['state'].checkpoint_items())
    assert finished.evals == expected['evals'] and finished.best_accuracy == expected['best_accuracy']

    result = namespace['result']
    assert isinstance(result, cnnzoo.Evaluation) and result.count == 50
    assert result.checkpoint.startswith('best (step ') and result.accuracy == expected['best_accuracy']

    run = namespace['run']
    assert run.step == TOTAL_STEPS and run.config.model.name == 'resnet20' and run.model.stage_sizes == (1, 1, 1)
    assert_bitwise_equal(run.variables, expected['state'].variables())
    assert namespace['kernel'].shape == (3, 3, 3, 16)
    # run.logits preprocesses as the run's evaluation does: the same logits as the evaluation pass.
    evaluated = restore_run('runs/r20_notebook', which='latest', overrides=tiny_overrides(tiny_cifar10, cache_dir))
    logits, _ = eval_logits(evaluated.setup, evaluated.restored.state, 16)
    np.testing.assert_allclose(np.asarray(namespace['logits']), logits[:8], rtol=1e-5, atol=1e-5)
    assert "LoadedRun('runs/r20_notebook': resnet20, " in repr(run)


def test_a_second_interrupt_stops_at_once_and_leaves_the_run_resumable(tiny_cifar10, cache_dir, tmp_path,
                                                                       monkeypatch):
    """A kernel raises KeyboardInterrupt for SIGINT while a cell runs: the first interrupt is the
    run's stop, a second one (before the stop is reached) raises KeyboardInterrupt at once. The
    kernel's handler is back, the workdir is free and keeps its checkpoint of step 12, from which
    the same call resumes (resuming from a checkpoint: the README's example above, tests/test_loop.py)."""
    from cnnzoo.run import loop
    from cnnzoo.run.workdir import WorkdirLock, latest_checkpoint_step

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a kernel's, while a cell runs
    try:
        monkeypatch.setattr(loop, 'make_feed', interrupting_feed(13, interrupts=2))  # as step 14 starts
        with pytest.raises(KeyboardInterrupt):
            cnnzoo.train(tiny_config(tiny_cifar10, cache_dir), tmp_path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    WorkdirLock(str(tmp_path)).acquire().release()  # free: a run in use would be refused here
    assert latest_checkpoint_step(str(tmp_path)) == 12  # checkpoints every 4 steps


def test_train_from_another_thread_is_refused_in_one_line_and_writes_nothing(tiny_cifar10, cache_dir, tmp_path):
    errors = []

    def call():
        try:
            cnnzoo.train(tiny_config(tiny_cifar10, cache_dir), tmp_path / 'run')
        except cnnzoo.ConfigError as e:
            errors.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert len(errors) == 1 and 'main thread' in str(errors[0]) and '\n' not in str(errors[0])
    assert not (tmp_path / 'run').exists()


def test_report_of_a_run_from_python_shows_its_table(reference, tmp_path):
    shutil.copytree(reference[1], tmp_path / 'study' / 'run')
    said = []
    written = cnnzoo.report(tmp_path / 'study', plots=False, say=said.append)
    assert written._repr_markdown_() == written.table == str(written) and '| run |' in written.table
    assert (tmp_path / 'study' / 'report.md').read_text() == written.markdown
    assert said and said[0].startswith('report ')


# ---- configs (no JAX) --------------------------------------------------------------------------

def test_get_config_takes_sections_dotted_keys_and_python_values():
    import pathlib

    config = cnnzoo.get_config(os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py'),
                               training={'num_epochs': 2, 'label_smoothing': np.float32(0.25)},
                               **{'model.stage_sizes': [1, 1, 1], 'optimizer.learning_rate': 0.05},
                               data={'archive': pathlib.Path('/data/cifar-10-python.tar.gz')}, seed=3)
    assert (config.training.num_epochs, config.training.num_steps) == (2.0, 0)  # an epoch count clears the steps
    assert config.training.label_smoothing == 0.25 and config.model.stage_sizes == (1, 1, 1)
    assert config.data.archive == '/data/cifar-10-python.tar.gz' and config.seed == 3
    assert config.model.name == 'resnet20' and config.optimizer.learning_rate == 0.05
    # A str stays a str, as in a sweep's grid; the command line's text reads literals first.
    assert cnnzoo.get_config(**{'data.archive': '123'}).data.archive == '123'
    assert cnnzoo.get_config(text_overrides=[('training.num_steps', '7')]).training.num_steps == 7
    both = cnnzoo.get_config(text_overrides=[('training.num_steps', '7')], training={'num_epochs': 1})
    assert (both.training.num_steps, both.training.num_epochs) == (0, 1.0)  # the keywords come after
    assert cnnzoo.get_config().to_dict() == cnnzoo.get_config(None).to_dict()  # the schema's defaults


@pytest.mark.parametrize('overrides, message', [
    ({'trainig': {'num_epochs': 1}}, 'unknown config key: trainig'),
    ({'training': {'num_epochs': 'x'}}, 'training.num_epochs: expected float'),
    ({'data.archive': object()}, 'data.archive=<object object at'),
    ({'training.num_epochs': float('nan')}, 'training.num_epochs=nan: not a plain value'),
])
def test_a_bad_override_is_one_line(overrides, message):
    with pytest.raises(cnnzoo.ConfigError, match=re.escape(message)) as raised:
        cnnzoo.get_config(**overrides)
    assert '\n' not in str(raised.value)


def test_import_cnnzoo_and_its_names_start_no_jax():
    code = ('import sys, cnnzoo\n'
            'names = [getattr(cnnzoo, name) for name in cnnzoo.__all__]\n'
            'cnnzoo.get_config("experiments/resnet20_cifar10.py", training={"num_epochs": 1})\n'
            'print(sorted(m for m in ("jax", "flax", "orbax", "torch", "IPython") if m in sys.modules))\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == '[]', result.stdout + result.stderr


def test_evaluate_and_load_refuse_a_checkpoint_that_is_no_checkpoint(tmp_path):
    for call in (cnnzoo.evaluate, cnnzoo.load):
        with pytest.raises(cnnzoo.ConfigError, match=r"checkpoint='newest': must be best, latest or a step"):
            call(tmp_path, 'newest')


# ---- progress ----------------------------------------------------------------------------------

RECORDS = [  # three records and a message between them, as a run makes them
    ('update', 10, {'epoch': 1.0, 'loss': 2.0, 'accuracy': 0.5, 'learning_rate': 0.05, 'images_per_sec': 100.0,
                    'eta_seconds': 10}),
    ('update', 20, {'epoch': 2.0, 'loss': 1.5, 'accuracy': 0.625, 'learning_rate': 0.005, 'images_per_sec': None,
                    'eta_seconds': None}),
    ('message', 'eval step 20 (test): loss 1.2000 accuracy 0.6000 on 50 images', None),
    ('update', 30, {'epoch': 3.0, 'loss': 1.25, 'accuracy': 0.75, 'learning_rate': 0.0005, 'images_per_sec': 1234.4,
                    'eta_seconds': 0}),
]


def show(progress: Progress) -> None:
    progress.message('start')
    for kind, what, fields in RECORDS:
        if kind == 'update':
            progress.update(what, **fields)
        else:
            progress.message(what)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_and_a_file_get_the_lines_they_always_got():
    """The text before the notebook's display was added (the output of the previous commit's
    Progress on these records, written out)."""
    terminal, log = Terminal(), io.StringIO()
    show(Progress(30, stream=terminal))
    show(Progress(30, stream=log))
    assert terminal.getvalue() == (
        'start\n'
        '\r[########................] step 10/30 epoch 1.00 loss 2.0000 acc 0.5000 lr 0.05 100 img/s eta 0m10s'
        '\r[################........] step 20/30 epoch 2.00 loss 1.5000 acc 0.6250 lr 0.005 ? img/s eta ?     \n'
        'eval step 20 (test): loss 1.2000 accuracy 0.6000 on 50 images\n'
        '\r[########################] step 30/30 epoch 3.00 loss 1.2500 acc 0.7500 lr 0.0005 1234 img/s eta 0m00s')
    assert log.getvalue() == (
        'start\n'
        'step 10/30 epoch 1.00 loss 2.0000 acc 0.5000 lr 0.05 100 img/s eta 0m10s\n'
        'step 20/30 epoch 2.00 loss 1.5000 acc 0.6250 lr 0.005 ? img/s eta ?\n'
        'eval step 20 (test): loss 1.2000 accuracy 0.6000 on 50 images\n'
        'step 30/30 epoch 3.00 loss 1.2500 acc 0.7500 lr 0.0005 1234 img/s eta 0m00s\n')


def test_a_notebook_gets_one_live_bar_and_the_messages_as_lines():
    shown, cell = [], io.StringIO()
    show(Progress(30, stream=cell, display=shown.append))
    assert cell.getvalue() == 'start\neval step 20 (test): loss 1.2000 accuracy 0.6000 on 50 images\n'
    assert [b['text/plain'][:60] for b in shown] == [
        '[########................] step 10/30 epoch 1.00 loss 2.0000',
        '[################........] step 20/30 epoch 2.00 loss 1.5000',
        '[########################] step 30/30 epoch 3.00 loss 1.2500']
    assert shown[-1]['text/html'].startswith('<progress value="30" max="30"')
    assert '<code>step 30/30 epoch 3.00 loss 1.2500 acc 0.7500 lr 0.0005 1234 img/s eta 0m00s</code>' \
        in shown[-1]['text/html']
    plain = io.StringIO()
    show(Progress(30, stream=plain, bar=False, display=shown.append))  # progress_bar=False: lines, as in a file
    assert plain.getvalue().count('\n') == 5 and len(shown) == 3


def fake_kernel(monkeypatch, *, kernel=True):
    """An IPython of a notebook's kernel, as far as :func:`notebook_display` looks: ``IPython`` in
    sys.modules whose shell has a kernel, ``IPython.display.display`` recording what it shows, and
    a stream of the kernel's kind (``ipykernel.iostream``); returns (the stream, the record)."""
    record = []

    class Handle:
        def update(self, bundle, **kwargs):
            record.append(('update', bundle, kwargs))

    def display(bundle, **kwargs):
        record.append(('display', bundle, kwargs))
        return Handle()

    shell = types.SimpleNamespace(kernel=object()) if kernel else types.SimpleNamespace()
    ipython = types.ModuleType('IPython')
    ipython.get_ipython = lambda: shell
    ipython_display = types.ModuleType('IPython.display')
    ipython_display.display = display
    ipython.display = ipython_display
    monkeypatch.setitem(sys.modules, 'IPython', ipython)
    monkeypatch.setitem(sys.modules, 'IPython.display', ipython_display)
    stream = type('OutStream', (io.StringIO,), {'__module__': 'ipykernel.iostream'})()
    return stream, record


def test_in_a_kernel_the_bar_is_one_display_updated_in_place(monkeypatch):
    stream, record = fake_kernel(monkeypatch)
    show(Progress(30, stream=stream))
    assert [(kind, kwargs) for kind, _, kwargs in record] == [
        ('display', {'raw': True, 'display_id': True}), ('update', {'raw': True}), ('update', {'raw': True})]
    assert record[-1][1]['text/plain'].startswith('[########################] step 30/30')
    assert stream.getvalue().count('\n') == 2  # the messages alone


def test_no_notebook_display_outside_a_kernel(monkeypatch):
    stream, _ = fake_kernel(monkeypatch, kernel=False)  # IPython in a terminal: a shell without a kernel
    assert notebook_display(stream) is None
    _, _ = fake_kernel(monkeypatch)
    assert notebook_display(io.StringIO()) is None  # stdout redirected away from the cell
    monkeypatch.delitem(sys.modules, 'IPython')
    assert notebook_display(stream) is None and 'IPython' not in sys.modules  # not imported to look
