"""The config schema, experiment files and command-line overrides."""

import glob
import os
import subprocess
import sys

import pytest

from cnnzoo import config as config_lib
from cnnzoo.config import ConfigError, apply_overrides, default_config, load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*.py')))


def test_there_are_experiments():
    assert len(EXPERIMENTS) >= 3


@pytest.mark.parametrize('path', EXPERIMENTS, ids=os.path.basename)
def test_experiment_files_load_and_name_registered_models(path):
    from cnnzoo.models import list_models

    config = load_config_file(path)
    assert config.model.name in list_models()
    with open(path) as f:
        doc = f.read()
    # a study file is run by the sweep runner; either through the one command or its scripts
    runs = any(c in doc for c in ('cnnzoo train', 'cnnzoo sweep', 'scripts/train.py', 'scripts/sweep.py'))
    assert runs and 'xpected' in doc, 'docstring must say how to run it and what to expect'


def _write(tmp_path, body):
    path = tmp_path / 'exp.py'
    path.write_text('from cnnzoo.config import default_config\n\ndef get_config():\n'
                    '    config = default_config()\n' + body + '    return config\n')
    return str(path)


def test_mistyped_key_in_experiment_is_one_line_error(tmp_path):
    path = _write(tmp_path, '    config.trainig = 1\n')
    with pytest.raises(ConfigError) as e:
        load_config_file(path)
    assert 'trainig' in str(e.value) and '\n' not in str(e.value)


def test_wrong_type_in_experiment_is_error(tmp_path):
    path = _write(tmp_path, "    config.training.batch_size = 'large'\n")
    with pytest.raises(ConfigError, match='batch_size'):
        load_config_file(path)


def test_missing_file_and_missing_get_config(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config_file(str(tmp_path / 'nope.py'))
    (tmp_path / 'empty.py').write_text('x = 1\n')
    with pytest.raises(ConfigError, match='get_config'):
        load_config_file(str(tmp_path / 'empty.py'))
    # A file Python cannot load as a module (no .py suffix) was an AttributeError traceback.
    (tmp_path / 'experiment.txt').write_text('def get_config():\n    return None\n')
    with pytest.raises(ConfigError, match='not a Python file'):
        load_config_file(str(tmp_path / 'experiment.txt'))


def test_overrides_parse_types_and_refuse_unknown_keys():
    config = default_config()
    apply_overrides(config, [('optimizer.learning_rate', '0.05'), ('training.batch_size', '64'),
                             ('schedule.boundaries_epochs', '(10, 20)'), ('optimizer.nesterov', 'True'),
                             ('data.archive', '/tmp/x.tar.gz'), ('model.activation', 'tanh'),
                             ('model.stage_sizes', '(1, 1, 1)'), ('optimizer.weight_decay', '0')])
    assert config.optimizer.learning_rate == 0.05 and config.training.batch_size == 64
    assert config.schedule.boundaries_epochs == (10, 20) and config.optimizer.nesterov is True
    assert config.model.activation == 'tanh' and config.model.stage_sizes == (1, 1, 1)
    assert config.optimizer.weight_decay == 0.0 and isinstance(config.optimizer.weight_decay, float)
    for key, value, needle in [('optimizer.learning_rte', '0.1', 'learning_rte'),
                               ('nosuch.key', '1', 'nosuch'),
                               ('training.batch_size', 'big', 'batch_size'),
                               ('training.batch_size', '1.5', 'batch_size'),
                               ('optimizer.nesterov', '1', 'nesterov'),
                               ('optimizer.name', 'lambda', 'optimizer.name'),
                               ('training.dtype', 'float16', 'dtype')]:
        with pytest.raises(ConfigError) as e:
            apply_overrides(default_config(), [(key, value)])
        assert needle in str(e.value) and '\n' not in str(e.value)


def test_epochs_and_steps_are_one_duration():
    config = apply_overrides(default_config(), [('training.num_epochs', '1')])
    assert config.training.num_epochs == 1.0 and config.training.num_steps == 0
    config = apply_overrides(config, [('training.num_steps', '10')])
    assert config.training.num_steps == 10 and config.training.num_epochs == 0.0
    config = default_config()
    config.training.num_epochs = 5.0
    with pytest.raises(ConfigError, match='exactly one'):
        config_lib.validate(config)


def test_json_round_trip():
    config = apply_overrides(default_config(), [('model.stage_sizes', '(1, 2, 3)'),
                                                ('schedule.boundaries_epochs', '(1.5,)')])
    again = config_lib.from_json(config_lib.to_json(config))
    assert again.to_dict() == config.to_dict()


def test_train_script_reports_bad_input_in_one_line(tmp_path):
    """The script itself: a mistyped override ends with exit 2 and one line, no traceback."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'scripts', 'train.py'), '--config',
         os.path.join(ROOT, 'experiments', 'resnet20_cifar10.py'), '--workdir', str(tmp_path / 'w'),
         '--config.training.batch_sise=3'], capture_output=True, check=False, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error:') and 'batch_sise' in lines[0]
    assert not (tmp_path / 'w').exists(), 'a refused run must not create its workdir'
