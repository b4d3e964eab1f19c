"""Fetching the official CIFAR archives, whole and checked, or not at all.

A run that finds no CIFAR anywhere (:func:`cnnzoo.data.datasets.find_cifar`) fetches the official
python archive from the CIFAR page's server (https://www.cs.toronto.edu/~kriz/cifar.html), or from
the mirror in ``$CNNZOO_CIFAR_MIRROR`` (a URL under which the same file names lie, for machines that
cannot reach the official one). The archive is streamed to a temporary file beside its final place,
with a progress line (bytes, rate, time left), then its size and MD5 are checked against the
published ones; only a whole, matching file is renamed into the data directory. An interrupted
download, a wrong checksum or a server that stops mid-file leaves no file that a later run could
take for the archive (the temporary file is removed; one left by a killed process is removed by
the next download), and each is one :class:`~cnnzoo.errors.DataError` line.

The published values: the MD5 sums are the CIFAR page's (and torchvision's ``CIFAR10.tgz_md5`` /
``CIFAR100.tgz_md5`` in ``torchvision/datasets/cifar.py``); the sizes are the official server's
``Content-Length`` for the two files (170,498,071 and 169,001,437 bytes, as the many published logs
of torchvision's and Keras' downloads of them also show).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cnnzoo.errors import DataError, first_line

OFFICIAL_URL = 'https://www.cs.toronto.edu/~kriz/'
MIRROR_VARIABLE = 'CNNZOO_CIFAR_MIRROR'
# file name: (size in bytes, MD5), see the module docstring
PUBLISHED = {
    'cifar-10-python.tar.gz': (170_498_071, 'c58f30108f718f92721af3b95e74349a'),
    'cifar-100-python.tar.gz': (169_001_437, 'eb9058c3a382ffc7106e4002c42a8d85'),
}
TIMEOUT = 30.0  # seconds without a byte (connecting or reading) before a download is given up
_CHUNK = 1 << 20


def archive_url(filename: str) -> str:
    """Where ``filename`` is fetched from: ``$CNNZOO_CIFAR_MIRROR/<filename>`` when the variable is
    set, else the official server's."""
    base = os.environ.get(MIRROR_VARIABLE) or OFFICIAL_URL
    return base.rstrip('/') + '/' + filename


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` accepts a connection within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, TypeError):  # no route, refused, no such host; TypeError: no host in the URL
        return False


class Progress:
    """The download's lines on ``stream``: where from, then its progress (bytes, rate, time left), on
    a terminal one line rewritten a few times a second, elsewhere (a log) a line every ``log_every``
    seconds; then what was received."""

    def __init__(self, name: str, total: int | None, stream=None, *, log_every: float = 10.0):
        self.name, self.total, self.stream = name, total, stream or sys.stderr
        self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.every = 0.25 if self.tty else log_every
        self.start = self.last = time.monotonic()

    def say(self, line: str) -> None:
        self.stream.write(line + '\n')
        self.stream.flush()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        line = f'downloading {self.name}: {_mb(done)} of {_mb(self.total)} MB, {_mb(rate)} MB/s' if self.total else \
            f'downloading {self.name}: {_mb(done)} MB, {_mb(rate)} MB/s'
        if self.total and rate > 0:
            line += f', {_duration(max(self.total - done, 0) / rate)} left'
        if self.tty:
            self.stream.write('\r' + line.ljust(79))
            self.stream.flush()
        else:
            self.say(line)

    def done(self, received: int) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        if self.tty:
            self.stream.write('\r')
        self.say(f'downloaded {self.name}: {_mb(received)} MB in {elapsed:.1f} s ({_mb(received / elapsed)} MB/s)'
                 .ljust(79 if self.tty else 0))


def fetch(url: str, destination: str, *, size: int, md5: str, stream=None) -> str:
    """Downloads ``url`` to ``destination`` (a file in an existing or creatable directory) if its
    size and MD5 are ``size`` and ``md5``; returns ``destination``. Anything else is one DataError
    line and no file at ``destination``: see the module docstring."""
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    remove_stale_parts(destination)
    partial = f'{destination}.{socket.gethostname()}-{os.getpid()}.part'
    name = os.path.basename(destination)
    try:
        digest, received, announced = _stream_to(url, partial, name, size, stream)
        if announced is not None and received < announced:
            raise DataError(_broke_off(url, received, announced, 'the connection closed early'))
        if received != size:
            raise DataError(f'{url} sent {received:,} bytes, not the {size:,} of the published {name}: '
                            'nothing was kept (another file, or a mirror with another copy)')
        if digest != md5:
            raise DataError(f'{url} sent a file whose MD5 is {digest}, not the published {md5} of {name}: '
                            'nothing was kept (a damaged download, or a mirror with another copy)')
        os.replace(partial, destination)
        Progress(name, size, stream).say(f'{name}: size and MD5 as published; kept as {destination}')
    finally:
        with contextlib.suppress(OSError):
            os.remove(partial)
    return destination


def _stream_to(url: str, partial: str, name: str, size: int, stream) -> tuple[str, int, int | None]:
    """``url`` written to ``partial`` with a progress line; returns its MD5, its length, and the
    length the server announced (None when it did not)."""
    digest, received, announced = hashlib.md5(usedforsecurity=False), 0, None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(partial, 'wb') as out:
            length = response.headers.get('Content-Length')
            announced = int(length) if length and length.isdigit() else None
            progress = Progress(name, announced or size, stream)
            progress.say(f'fetching {name} ({_mb(announced or size)} MB) from {url}')
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress.update(received)
            progress.done(received)
    except urllib.error.HTTPError as e:
        raise DataError(f'{url} answered HTTP {e.code} ({e.reason}): {name} was not downloaded') from None
    except urllib.error.URLError as e:
        reason = first_line(e.reason) if isinstance(e.reason, BaseException) else e.reason
        raise DataError(f'cannot reach {url} ({reason}): {name} was not downloaded') from None
    except TimeoutError:
        raise DataError(_broke_off(url, received, announced or size, f'{TIMEOUT:g} s without data')) from None
    except (http.client.HTTPException, OSError) as e:  # IncompleteRead, a reset connection, a full disk
        raise DataError(_broke_off(url, received, announced or size, first_line(e, typed=True))) from None
    return digest.hexdigest(), received, announced


def _broke_off(url: str, received: int, total: int, why: str) -> str:
    return (f'the download of {url} broke off after {received:,} of {total:,} bytes ({why}): nothing was kept; '
            'run the same command to try again')


def remove_stale_parts(destination: str) -> list[str]:
    """Removes the temporary files of earlier downloads of ``destination`` on this machine whose
    process is gone (a SIGKILL left them); returns their paths."""
    directory, base = os.path.split(os.path.abspath(destination))
    pattern = re.compile(re.escape(base) + r'\.' + re.escape(socket.gethostname()) + r'-(\d+)\.part$')
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            match = pattern.match(entry)
            if match and not _alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(directory, entry))
                    removed.append(os.path.join(directory, entry))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mb(n: float) -> str:
    return f'{n / 1e6:.1f}'


def _duration(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 120 else f'{seconds / 60:.0f} min'
