"""The command line through its real entry points: the `cnnzoo` console command, `python -m cnnzoo`
and scripts/*.py. Help, the generated schema help, the dry run, and the exit statuses."""

import functools
import glob
import json
import os
import signal
import subprocess
import sys
import typing

import pytest

from cnnzoo.cli import COMMANDS, main
from cnnzoo.cli.common import exit_status
from cnnzoo.config import apply_overrides, default_config, load_config_file, to_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py')
CONSOLE = os.path.join(os.path.dirname(sys.executable), 'cnnzoo')  # installed by `pip install -e .`
# Where the project runs from its source tree on PYTHONPATH (the GPU machine: scripts/gpu/run.sh),
# there is no console script; `python -m cnnzoo` covers the same entry point there.
needs_console = pytest.mark.skipif(not os.path.exists(CONSOLE),
                                   reason=f'the console script {CONSOLE} is not installed (pip install -e .)')
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, 'scripts', '*.py')))


def cnnzoo(*args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'cnnzoo', *args], check=False, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def schema_keys(node, prefix=''):
    """Every leaf key of a config, dotted, computed here independently of cnnzoo.cli.help."""
    keys = []
    for key, value in node.items():
        keys += schema_keys(value, f'{prefix}{key}.') if isinstance(value, dict) else [f'{prefix}{key}']
    return keys


@needs_console
def test_console_command_is_installed_and_lists_every_command():
    result = subprocess.run([CONSOLE, '--help'], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in COMMANDS)
    assert 'example' in result.stdout and '143' in result.stdout  # the exit statuses are part of it


@pytest.mark.parametrize('command', [[], *([name] for name in COMMANDS)], ids=lambda c: ' '.join(c) or 'cnnzoo')
def test_every_command_has_help_with_an_example(command):
    for flag in ('--help', '-h'):
        result = cnnzoo(*command, flag)
        assert result.returncode == 0, result.stderr
        assert 'usage:' in result.stdout and 'example' in result.stdout, result.stdout


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_every_script_has_help(script):
    for flag in ('--help', '-h'):  # scripts/evaluate.py --help used to be "--help needs a value"
        result = subprocess.run([sys.executable, script, flag], check=False, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert 'usage' in result.stdout.lower()


def test_help_imports_neither_jax_nor_torch():
    code = ('import sys, contextlib, io\nfrom cnnzoo.cli import main\n'
            'with contextlib.redirect_stdout(io.StringIO()):\n'
            '    for command in ([], ["train"], ["compare-pytorch"]):\n'
            '        assert main([*command, "--help"]) == 0\n'
            'print(sorted(m for m in ("jax", "torch", "flax") if m in sys.modules))\n')
    result = subprocess.run([sys.executable, '-c', code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == '[]', result.stdout + result.stderr


def test_train_help_lists_every_schema_key_with_type_default_and_comment():
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'train.py'), '--help'],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    schema = default_config()
    for key in schema_keys(schema.to_dict()):
        value = functools.reduce(lambda node, part: node[part], key.split('.'), schema)
        line = next((line for line in lines if line.split()[:1] == [key]), None)
        assert line is not None, f'{key} is not in train --help'
        assert line.split()[1] == type(value).__name__ and repr(value) in line, line
    text = ' '.join(result.stdout.split())
    # comments of cnnzoo/config.py: beside a key, above a key, above a section
    assert "data.archive str '' path to an official CIFAR archive; '' = look in data_dir" in text
    assert 'True matches PyTorch\'s SGD(weight_decay=...)' in text
    assert 'init: Initial weights from a PyTorch state_dict file' in text


def test_model_fields_are_listed_with_their_allowed_values():
    from cnnzoo.models import create_model, model_fields
    from cnnzoo.models.registry import field_types

    result = cnnzoo('train', '--config.model.name=resnet20', '--help')
    assert result.returncode == 0, result.stderr
    text = ' '.join(result.stdout.split())
    model = create_model('resnet20', num_classes=10)
    hints = field_types(model)
    for field in model_fields(model):
        assert f'model.{field}' in text
    assert "model.shortcut: 'A' | 'B' | 'none' = 'A'" in text
    assert 'model.stage_sizes: Sequence[int] = (3, 3, 3)' in text
    literals = {f: typing.get_args(hint) for f, hint in hints.items() if typing.get_origin(hint) is typing.Literal}
    assert {'activation', 'residual', 'shortcut', 'stem'} <= set(literals)
    for field, allowed in literals.items():
        assert f"model.{field}: {' | '.join(map(repr, allowed))} = " in text


def test_dry_run_prints_the_resolved_config_and_runs_nothing(tmp_path):
    overrides = [('model.name', 'plain20'), ('training.num_epochs', '2'), ('schedule.ratio', '5:3:2')]
    flags = [f'--config.{k}={v}' for k, v in overrides]
    expected = json.loads(to_json(apply_overrides(load_config_file(EXPERIMENT), overrides)))
    workdir = tmp_path / 'run'
    result = cnnzoo('train', '--config', EXPERIMENT, '--workdir', str(workdir), *flags, '--dry-run')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    assert expected['training']['num_steps'] == 0, 'num_epochs on the command line clears num_steps'
    assert not workdir.exists()
    result = cnnzoo('config', EXPERIMENT, *flags)
    assert result.returncode == 0 and json.loads(result.stdout) == expected, result.stderr


def test_dry_run_checks_the_whole_config_in_one_line(tmp_path):
    result = cnnzoo('train', '--config', EXPERIMENT, '--config.model.activation=swish', '--dry-run')
    assert result.returncode == 2 and result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: config.model.activation') and 'relu' in lines[0]


@needs_console
def test_unknown_command_is_one_line_and_status_2():
    result = subprocess.run([CONSOLE, 'trian', '--config', EXPERIMENT], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown command 'trian'" in lines[0] and 'train' in lines[0].split(';')[1]


def test_bad_input_to_a_command_is_one_line_and_status_2():
    result = cnnzoo('models', 'nomodel*')
    assert result.returncode == 2
    assert result.stderr.startswith('error: no model matches') and len(result.stderr.strip().splitlines()) == 1


def test_exit_status_of_a_stopped_run_is_128_plus_the_signal():
    assert exit_status(None) == 0
    assert exit_status('SIGTERM') == 143 == 128 + signal.SIGTERM
    assert exit_status('SIGINT') == 130 == 128 + signal.SIGINT


def test_train_hands_extend_to_the_loop_and_maps_its_summary(monkeypatch, tmp_path):
    """In process, the training replaced: ``--extend`` (the flag a refused longer run names) reaches
    cnnzoo.api.train (what the command runs), and a summary stopped by SIGINT is exit status 130."""
    import types

    import cnnzoo.cli.train
    from cnnzoo.cli.train import train_main

    calls = []

    def fake_train(config, workdir, *, extend=False, join=None):
        assert join is None  # one process: nothing to join
        calls.append((config.model.name, workdir, extend))
        return types.SimpleNamespace(stopped_by='SIGINT' if extend else None)

    monkeypatch.setattr(cnnzoo.cli.train, 'train', fake_train)
    args = ['--config', EXPERIMENT, '--workdir', str(tmp_path), '--config.model.name=plain20']
    assert train_main(args) == 0
    assert train_main([*args, '--extend']) == 130
    assert calls == [('plain20', str(tmp_path), False), ('plain20', str(tmp_path), True)]


def run_console(workdir, overrides, *, sigterm_at_step=None):
    """`cnnzoo train` on the tiny run; with ``sigterm_at_step``, SIGTERM once that step is logged."""
    cmd = [CONSOLE, 'train', '--config', EXPERIMENT, '--workdir', str(workdir)]
    proc = subprocess.Popen(cmd + [f'--config.{k}={v}' for k, v in overrides], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if sigterm_at_step is not None and line.startswith(f'step {sigterm_at_step}/'):
            proc.send_signal(signal.SIGTERM)
            sigterm_at_step = None
    proc.wait(timeout=300)
    return proc.returncode, ''.join(lines)


@needs_console
def test_sigterm_exits_143_after_saving_and_the_rerun_exits_0(tiny_cifar10, cache_dir, tmp_path, capsys):
    from tiny_run import tiny_overrides

    from cnnzoo.run.workdir import has_checkpoint

    overrides = tiny_overrides(tiny_cifar10, cache_dir, **{'training.num_epochs': '1'})
    status, out = run_console(tmp_path, overrides, sigterm_at_step=3)
    assert status == 128 + signal.SIGTERM == 143, out
    assert 'stopped by SIGTERM' in out and has_checkpoint(str(tmp_path)), out
    # The same command again, run here (what the console script calls): status 0 once it has resumed.
    assert main(['train', '--config', EXPERIMENT, '--workdir', str(tmp_path),
                 *[f'--config.{k}={v}' for k, v in overrides]]) == 0
    out = capsys.readouterr().out
    assert 'resuming at step' in out and 'done: step 10' in out, out


def test_cifar_to_folder_names_its_own_archive_flag(monkeypatch, tmp_path, capsys):
    import cnnzoo.data.datasets
    from cnnzoo.cli.data import cifar_to_folder_main

    monkeypatch.setenv('CNNZOO_DATA_DIR', str(tmp_path / 'data'))
    monkeypatch.setattr(cnnzoo.data.datasets, 'network_available', lambda: False)
    monkeypatch.setattr(cnnzoo.data.datasets.load_dataset, '__kwdefaults__',
                        {**cnnzoo.data.datasets.load_dataset.__kwdefaults__, 'network_check': lambda: False})
    assert cifar_to_folder_main(['--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert '--archive FILE' in err and '--config.data.archive' not in err
    assert not (tmp_path / 'out').exists()


def test_train_help_shows_the_named_model_as_model_name(capsys):
    from cnnzoo.cli.train import train_main

    assert train_main(['--config.model.name=resnet18', '--help']) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith('model.name '))
    assert "'resnet18' (given; default 'resnet20')" in line
    assert train_main(['--help']) == 0
    plain = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith('model.name '))
    assert 'given' not in plain and "'resnet20'" in plain


def command_parser(name):
    """The argparse parser of command ``name``: ``X_parser()`` beside its ``X_main`` (cnnzoo.cli)."""
    import importlib

    module, function, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), function.replace('_main', '_parser'))()


@pytest.mark.parametrize('command', list(COMMANDS))
def test_every_flag_of_every_command_is_explained_in_its_help(command, capsys):
    from cnnzoo.cli import main

    assert main([command, '--help']) == 0
    text = capsys.readouterr().out
    script = f'{command.replace("-", "_")}.py'  # scripts/X.py takes the same arguments, named as the command
    assert text.startswith(f'usage: cnnzoo {command} ') and script not in text.splitlines()[0], text
    usage = text.split('\n\n')[0]
    options = [action.option_strings for action in command_parser(command)._actions if action.option_strings]
    assert ['-h', '--help'] in options and (len(options) > 1 or command == 'models'), options
    for names in options:
        flag = names[-1]
        line = next((line for line in text.splitlines() if line.strip().startswith(', '.join(names) + ' ')), None)
        assert line is not None and len(line.split()) > len(names) + 1, (flag, text)  # a flag and its meaning
        assert names[0] in usage, (flag, usage)
    assert '\nexample' in text and f'  cnnzoo {command} ' in text
    if command in ('sweep', 'report', 'train'):
        assert 'exit status' in text
    if command == 'sweep':
        words = ' '.join(text.split())
        assert '(default: each point' in words and '(default: every point' in words


@pytest.mark.parametrize('command', list(COMMANDS))
def test_an_unknown_flag_is_one_line_naming_it(command, capsys):
    from cnnzoo.cli import main

    assert main([command, '--bogus=1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: unknown flag --bogus ') and f'cnnzoo {command} --help' in err[0]


@pytest.mark.parametrize('argv, message', [
    (['train', '--config', EXPERIMENT, '--workdir'], '--workdir: expected one argument'),
    (['train', '--config', EXPERIMENT, '--workdir', '--dry-run'], '--workdir: expected one argument'),
    (['train', '--config', EXPERIMENT, '--dry-run', '--config.seed'], '--config.seed: expected one argument'),
    (['train', '--config', EXPERIMENT, '--config.seed', '--dry-run'], '--config.seed: expected one argument'),
    (['train', '--config', EXPERIMENT, '--work', 'runs/x'], 'unknown flag --work '),  # never abbreviated
    (['train', '--config', EXPERIMENT, '--dry-run=yes'], "--dry-run: ignored explicit argument 'yes'"),
    (['train', '--config', EXPERIMENT, 'runs/x'], "unexpected argument 'runs/x'"),
    (['report', 'a', 'b'], "unexpected argument 'b'"),
    (['models', 'a*', 'b*'], "unexpected argument 'b*'"),
    (['evaluate', '--workdir', 'w', '--checkpoint', '-3'], "--checkpoint must be best, latest or a step number"),
    (['compare-pytorch', '--image-size', '4'], "--image-size '4': expected a whole number >= 8"),
    (['compare-pytorch', '--config.seed=1'], 'unknown flag --config.seed '),  # it takes no overrides
    (['cifar-to-folder', '--out', 'o', '--name', 'cifar11'], "--name: invalid choice: 'cifar11'"),
])
def test_a_bad_flag_is_one_line_and_status_2(argv, message, capsys):
    from cnnzoo.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and message in err[0], err


def test_flag_value_forms_and_repeats():
    """``--flag=value`` is ``--flag value``, for flags and overrides alike; a value may start with
    one '-'; a repeated flag keeps its last value, a repeated override its last too (in order)."""
    from cnnzoo.cli.train import parse_train_args

    config, args = parse_train_args(['--config=' + EXPERIMENT, '--workdir=runs/a', '--config.seed=3',
                                     '--config.model.name=plain20', '--stall-timeout=0'])
    again, args_again = parse_train_args(['--config', EXPERIMENT, '--workdir', 'runs/a', '--config.seed', '3',
                                          '--config.model.name', 'plain20', '--stall-timeout', '0'])
    assert to_json(config) == to_json(again) and config.seed == 3 and config.model.name == 'plain20'
    assert args.workdir == args_again.workdir == 'runs/a' and args.stall_timeout == args_again.stall_timeout == 0
    config, args = parse_train_args(['--config', 'nofile.py', '--config', EXPERIMENT, '--workdir', 'runs/a',
                                     '--workdir', 'runs/b', '--config.model.name=plain20',
                                     '--config.model.name', 'plain32', '--config.data.workers', '-1'])
    assert args.workdir == 'runs/b' and config.model.name == 'plain32' and config.data.workers == -1
    assert args.overrides == [('model.name', 'plain20'), ('model.name', 'plain32'), ('data.workers', '-1')]


def test_workdir_is_required_except_for_a_dry_run():
    from cnnzoo.cli.train import parse_train_args
    from cnnzoo.config import ConfigError

    with pytest.raises(ConfigError, match=r'^--workdir is required \(cnnzoo train --help\)$'):
        parse_train_args(['--config', EXPERIMENT])
    _, args = parse_train_args(['--config', EXPERIMENT, '--dry-run'])
    assert args.workdir is None and args.dry_run


def test_overrides_around_a_positional_argument(capsys):
    """``cnnzoo config --config.KEY VALUE EXPERIMENT``: the value is the override's, not the file."""
    from cnnzoo.cli.config import config_main

    assert config_main(['--config.seed', '7', EXPERIMENT, '--config.model.name', 'plain20']) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved['seed'] == 7 and resolved['model']['name'] == 'plain20'
    assert resolved['data'] == json.loads(to_json(load_config_file(EXPERIMENT)))['data']


@pytest.mark.parametrize('argv', [['sweep', '--workdir', 'x', '--help'], ['compare-accuracy', '-h'],
                                  ['report', '--help', '--no-plots'], ['cifar-to-folder', '--bogus', '--help']])
def test_help_wins_over_a_missing_or_unknown_flag(argv, capsys):
    from cnnzoo.cli import main

    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f'usage: cnnzoo {argv[0]} ') and err == ''


def test_train_help_reads_the_experiment_named_after_it(capsys):
    """--help anywhere: the experiment given after it still names the model whose fields are listed."""
    from cnnzoo.cli.train import train_main

    vgg = os.path.join(ROOT, 'experiments', 'vgg16_cifar10.py')
    name = load_config_file(vgg).model.name
    assert name != default_config().model.name
    assert train_main(['--help', '--config', vgg]) == 0
    assert f'fields of model {name} ' in capsys.readouterr().out
