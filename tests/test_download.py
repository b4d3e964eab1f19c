"""Fetching the official CIFAR archive when it is nowhere (cnnzoo.data.download), from a local HTTP
server started in the test (http.server in a thread, on 127.0.0.1): the tiny archive of the suite
served whole, and broken: cut short, with wrong bytes, a server that closes or goes silent mid-file,
a 404. No test touches the internet: the mirror variable points every download at the local server,
and the published size and MD5 are the tiny archive's."""

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import write_cifar10_python_archive
from tiny_run import EXPERIMENT

from cnnzoo.data import DataError, download, load_dataset
from cnnzoo.data.datasets import find_cifar, read_cifar

ARCHIVE = 'cifar-10-python.tar.gz'


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/<variant>/<file>``: the archive as the variant serves it (see :func:`served`)."""

    def do_GET(self):  # http.server's name
        variant, _, name = self.path.strip('/').partition('/')
        body = self.server.files.get(name)
        if body is None or variant == 'missing':
            self.send_error(404, 'Not Found')
            return
        if variant == 'truncated':  # the file itself is cut short: its length says so
            body = body[:len(body) // 2]
        elif variant == 'wrong':  # as long as the published file, one byte changed
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        self.send_response(200)
        self.send_header('Content-Type', 'application/x-gzip')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if variant in ('closes', 'stalls'):  # the whole length announced, half of it sent
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if variant == 'stalls':
                self.server.release.wait()  # silent until the test ends
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """``(base URL, archive bytes, its arrays)``: the tiny archive on a local server."""
    path = tmp_path_factory.mktemp('served') / ARCHIVE
    arrays = write_cifar10_python_archive(path, per_batch=8, test=10)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.daemon_threads = True
    server.files = {ARCHIVE: path.read_bytes()}
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', server.files[ARCHIVE], arrays
    server.release.set()
    server.shutdown()


@pytest.fixture
def mirror(served, monkeypatch):
    """Downloads go to the local server's ``variant`` path (set it with ``mirror(variant)``), and the
    published size and MD5 are the tiny archive's."""
    base, body, _ = served
    monkeypatch.setitem(download.PUBLISHED, ARCHIVE, (len(body), hashlib.md5(body).hexdigest()))
    monkeypatch.setattr(download, 'TIMEOUT', 1.0)

    def use(variant):
        monkeypatch.setenv(download.MIRROR_VARIABLE, f'{base}/{variant}')

    use('good')
    return use


def _one_line(message, *needles):
    assert '\n' not in message, message
    for needle in needles:
        assert needle in message, message


def test_a_first_run_fetches_the_archive_checks_it_and_keeps_it(served, mirror, tmp_path):
    base, body, (x_train, y_train, x_test, y_test) = served
    data_dir = tmp_path / 'data'
    location = find_cifar('cifar10', data_dir=str(data_dir))  # nothing on disk: the archive is to be fetched
    assert location.kind == 'download' and location.url == f'{base}/good/{ARCHIVE}'
    assert location.path == str(data_dir / ARCHIVE) and not data_dir.exists()  # the search fetches nothing
    out = io.StringIO()
    got = read_cifar(location, data_dir=str(data_dir), stream=out)
    np.testing.assert_array_equal(got[0], x_train)
    np.testing.assert_array_equal(got[2], x_test)
    np.testing.assert_array_equal(got[3], y_test)
    assert (data_dir / ARCHIVE).read_bytes() == body
    assert not [f for f in os.listdir(data_dir) if f.endswith('.part')]
    lines = out.getvalue().splitlines()
    assert lines[0] == f'fetching {ARCHIVE} ({len(body) / 1e6:.1f} MB) from {base}/good/{ARCHIVE}', lines
    assert lines[-2].startswith(f'downloaded {ARCHIVE}: ') and 'MB/s' in lines[-2], lines
    assert lines[-1] == f'{ARCHIVE}: size and MD5 as published; kept as {data_dir / ARCHIVE}', lines
    # the next run finds the archive where the download put it, with no network
    again = find_cifar('cifar10', data_dir=str(data_dir), network_check=lambda: False)
    assert again.kind == 'archive' and again.path == str(data_dir / ARCHIVE)
    np.testing.assert_array_equal(load_dataset('cifar10', data_dir=str(data_dir)).train_labels, y_train)


@pytest.mark.parametrize('variant, needles', [
    ('truncated', ('not the', 'of the published', 'nothing was kept')),
    ('wrong', ('MD5', 'not the published', 'nothing was kept')),
    ('closes', ('broke off', 'nothing was kept', 'run the same command')),
    ('stalls', ('broke off', 'without data', 'nothing was kept')),
    ('missing', ('HTTP 404', 'was not downloaded')),
])
def test_a_broken_download_is_one_line_and_leaves_nothing_taken_for_the_archive(variant, needles, mirror, tmp_path):
    mirror(variant)
    data_dir = tmp_path / 'data'
    with pytest.raises(DataError) as e:
        load_dataset('cifar10', data_dir=str(data_dir))
    _one_line(str(e.value), *needles)
    assert os.listdir(data_dir) == []  # no archive, no partial file
    with pytest.raises(DataError, match='no network'):  # a later run offline: nothing there to take
        find_cifar('cifar10', data_dir=str(data_dir), network_check=lambda: False)


def test_an_interrupted_download_leaves_nothing_and_a_killed_ones_leftover_is_never_taken(served, mirror, tmp_path,
                                                                                           monkeypatch):
    data_dir = tmp_path / 'data'
    location = find_cifar('cifar10', data_dir=str(data_dir))

    def interrupted(self, done):
        raise KeyboardInterrupt  # Ctrl-C in the middle of the transfer

    with monkeypatch.context() as m:
        m.setattr(download.Progress, 'update', interrupted)
        with pytest.raises(KeyboardInterrupt):
            read_cifar(location, data_dir=str(data_dir), stream=io.StringIO())
    assert os.listdir(data_dir) == []
    # A SIGKILL leaves its partial file: no run takes it for the archive, and the next download removes it.
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    leftover = data_dir / f'{ARCHIVE}.{socket.gethostname()}-{gone.pid}.part'
    leftover.write_bytes(served[1][:1000])
    assert find_cifar('cifar10', data_dir=str(data_dir)).kind == 'download'
    read_cifar(find_cifar('cifar10', data_dir=str(data_dir)), data_dir=str(data_dir), stream=io.StringIO())
    assert sorted(os.listdir(data_dir)) == [ARCHIVE, 'cnnzoo-cache']


def test_offline_with_nothing_on_disk_is_todays_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(download.MIRROR_VARIABLE, 'http://127.0.0.1:9')  # nothing listens on port 9 (discard)
    with pytest.raises(DataError) as e:
        load_dataset('cifar10', data_dir=str(tmp_path))
    _one_line(str(e.value), 'not found and no network', ARCHIVE, '--config.data.archive', str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_the_mirror_variable_and_the_official_url(monkeypatch):
    monkeypatch.delenv(download.MIRROR_VARIABLE, raising=False)
    assert download.archive_url(ARCHIVE) == f'https://www.cs.toronto.edu/~kriz/{ARCHIVE}'
    assert download.PUBLISHED[ARCHIVE] == (170_498_071, 'c58f30108f718f92721af3b95e74349a')
    assert download.PUBLISHED['cifar-100-python.tar.gz'] == (169_001_437, 'eb9058c3a382ffc7106e4002c42a8d85')
    monkeypatch.setenv(download.MIRROR_VARIABLE, 'https://example.org/cifar/')
    assert download.archive_url(ARCHIVE) == f'https://example.org/cifar/{ARCHIVE}'


def test_the_commands_fetch_cifar_and_a_wrong_checksum_is_exit_2_with_nothing_kept(mirror, tmp_path, monkeypatch,
                                                                                   capsys):
    """``cnnzoo cifar-to-folder`` with an empty data directory fetches the archive and says so;
    ``cnnzoo train`` given a mirror whose copy differs stops before training: one line, status 2,
    no run directory and no file in the data directory."""
    from cnnzoo.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(['cifar-to-folder', '--out', 'folder', '--data-dir', 'data', '--per-class-train', '1',
                 '--per-class-val', '1']) == 0
    err = capsys.readouterr().err
    assert 'reading cifar10 from the official archive, fetched from' in err and f'downloaded {ARCHIVE}' in err, err
    assert os.path.isfile(os.path.join('data', ARCHIVE)) and len(os.listdir('folder/val')) == 10

    mirror('wrong')
    status = main(['train', '--config', EXPERIMENT, '--workdir', 'run', '--config.data.data_dir=fresh',
                   '--config.training.num_steps=1'])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error: ')]
    assert status == 2 and len(err) == 1 and 'MD5' in err[0], err
    assert not os.path.exists('run') and os.listdir('fresh') == []
