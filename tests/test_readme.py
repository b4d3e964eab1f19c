"""The README's commands are the real ones: every `train`, `sweep --list` and `config` command it
shows is accepted by the command line as written (through `--dry-run`, which runs the start's checks
and reads, trains and writes nothing), and every `--help` it shows works."""

import os
import pathlib
import re
import shlex

import pytest

from cnnzoo.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')


def readme_commands():
    """``(command, args)`` for each cnnzoo command line in the README's bash blocks, continuation
    lines joined, ``scripts/X.py`` read as ``cnnzoo X`` and the shell's parts around it dropped."""
    text = pathlib.Path(README).read_text(encoding='utf-8')
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, flags=re.DOTALL):
        for line in block.replace('\\\n', ' ').splitlines():
            words, part = [], []
            for word in shlex.split(line.replace('$i', '0'), comments=True) + [';']:
                if word in ('&&', '&', ';', '|') or word.endswith(';'):
                    words.append(part + ([word[:-1]] if word.endswith(';') and word != ';' else []))
                    part = []
                else:
                    part.append(word)
            for part in words:
                for k, word in enumerate(part):
                    if word == 'cnnzoo' and k + 1 < len(part) and not part[k + 1].startswith('-'):
                        commands.append((part[k + 1], part[k + 2:]))
                    elif word.startswith('scripts/') and word.endswith('.py'):
                        commands.append((os.path.basename(word)[:-3].replace('_', '-'), part[k + 1:]))
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_of_its_flows():
    names = {name for name, _ in COMMANDS}
    assert {'train', 'evaluate', 'sweep', 'report', 'config', 'models'} <= names, names
    first = COMMANDS[0]
    assert first[0] == 'train' and '--config.training.num_epochs=1' in first[1], first


@pytest.mark.parametrize('args', [a for n, a in COMMANDS if n == 'train' and '--help' not in a],
                         ids=lambda a: ' '.join(a)[:80])
def test_every_train_command_of_the_readme_passes_the_checks_of_a_start(args, tmp_path, capsys):
    args = [str(tmp_path / 'run') if previous == '--workdir' else word
            for previous, word in zip([None, *args], args)]
    assert main(['train', *args, '--dry-run']) == 0, capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('name,args', [(n, a) for n, a in COMMANDS if n in ('config', 'sweep')],
                         ids=lambda v: str(v)[:80])
def test_every_config_and_sweep_of_the_readme_is_accepted(name, args, tmp_path, capsys):
    """`config` prints the resolved config; a sweep is run as `--list` (every point built and checked,
    nothing trained)."""
    args = [str(tmp_path / 'sweep') if previous == '--workdir' else word
            for previous, word in zip([None, *args], args)]
    extra = ['--list'] if name == 'sweep' and '--list' not in args else []
    assert main([name, *args, *extra]) == 0, capsys.readouterr().err
    assert not (tmp_path / 'sweep').exists()


@pytest.mark.parametrize('name,args', [(n, a) for n, a in COMMANDS if '--help' in a], ids=lambda v: str(v)[:60])
def test_every_help_the_readme_shows_works(name, args, capsys):
    try:
        status = main([name, *args])
    except SystemExit as stop:
        status = stop.code or 0
    out = capsys.readouterr()
    assert status == 0, out.err
    assert 'usage' in out.out.lower()
