"""The suite's own machinery: the pytest-xdist groups that pyproject's ``--dist loadgroup`` relies on.

The multi-process tests share one group (tiny_run.PROCESSES) so that two of them never run at once,
and the tests of a costly module fixture share one so that it is built once (conftest.py,
SHARED_FIXTURES). pytest-xdist sends a group to one worker by writing the group into each test's
node id; with pytest 9.2 that write is silently lost (pytest-xdist issue 1386) and every group runs
spread over the workers, which nothing else in the suite would notice.
"""

import os
import pathlib

import pytest
from conftest import SCHEDULED_LAST, SHARED_FIXTURES
from tiny_run import PROCESSES


def under_loadgroup(config) -> bool:
    return bool(os.environ.get('PYTEST_XDIST_WORKER')) and bool(config.getoption('loadgroup', False))


@pytest.mark.xdist_group(PROCESSES)
def test_a_group_reaches_the_xdist_scheduler(request):
    if not under_loadgroup(request.config):
        pytest.skip('run without pytest-xdist --dist loadgroup (the suite runs with it: pyproject.toml)')
    assert request.node.nodeid.endswith(f'@{PROCESSES}'), request.node.nodeid


class FakeItem:
    """What conftest's hook reads of a collected test: its fixtures and its xdist_group marks."""

    def __init__(self, fixturenames, group=None, module='test_api'):
        self.fixturenames, self.marks = fixturenames, [pytest.mark.xdist_group(group).mark] if group else []
        self.path = pathlib.Path('tests', f'{module}.py')

    def get_closest_marker(self, name):
        return next((m for m in self.marks if m.name == name), None)

    def add_marker(self, marker):
        self.marks.append(marker.mark)

    def groups(self):
        return [m.args[0] for m in self.marks]


def test_a_test_of_a_shared_fixture_joins_its_group_and_a_grouped_test_keeps_its_own(pytestconfig):
    import conftest

    items = [FakeItem(['tmp_path', 'reference']), FakeItem(['four_devices', 'one_device']),
             FakeItem(['one_device', 'reference'], group=PROCESSES), FakeItem(['tiny_cifar10', 'tmp_path'])]
    conftest.pytest_collection_modifyitems(pytestconfig, items)
    assert [item.groups() for item in items] == [[SHARED_FIXTURES['reference']], [SHARED_FIXTURES['four_devices']],
                                                 [PROCESSES], []]


def test_the_modules_of_short_tests_go_to_the_end_of_the_queue_in_their_order(pytestconfig):
    import conftest

    modules = ['test_registry', 'test_api', SCHEDULED_LAST[0], 'test_zoo_training', 'test_registry', 'test_scale']
    items = [FakeItem([], module=name) for name in modules]
    conftest.pytest_collection_modifyitems(pytestconfig, items)
    assert [item.path.stem for item in items] == ['test_api', 'test_zoo_training', 'test_scale', SCHEDULED_LAST[0],
                                                  'test_registry', 'test_registry']
