"""The registry every config name goes through (cnnzoo.registry)."""

import pytest

from cnnzoo.errors import ConfigError
from cnnzoo.registry import Registry


def test_registered_names_resolve_in_order_with_their_help_and_params():
    things = Registry('thing', 'section.thing')

    @things.register('first', params=('section.size',), kind='a')
    def first():
        """The first thing.

        More words that the help leaves out."""
        return 1

    things.add('second', 2.5, help='a plain value')
    assert things.names() == ('first', 'second') and list(things) == ['first', 'second'] and len(things) == 2
    assert 'first' in things and 'third' not in things
    assert things['first'] is first and things['second'] == 2.5
    entry = things.get('first')
    assert (entry.help, entry.params, entry.meta) == ('The first thing.', ('section.size',), {'kind': 'a'})
    assert things.get('second').help == 'a plain value'


def test_an_unknown_name_is_one_line_naming_the_key_and_the_known_names():
    things = Registry('thing', 'section.thing')
    things.add('a', 1, help='')
    things.add('b', 2, help='')
    with pytest.raises(ConfigError) as raised:
        things.get('c')
    assert str(raised.value) == "config.section.thing='c': choose one of a, b"


def test_a_name_registered_twice_is_refused():
    things = Registry('thing', 'section.thing')
    things.add('a', 1, help='')
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        things.add('a', 2, help='')
