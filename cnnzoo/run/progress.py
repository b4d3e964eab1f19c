"""Progress output: a live one-line bar on a terminal, one live bar in a notebook's cell (Jupyter,
Colab: an IPython kernel), plain log lines elsewhere (files, CI, pipes); and the timer of the
training steps the progress lines report."""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24  # characters of the terminal's bar

# Shows a mimebundle ({'text/plain': ..., 'text/html': ...}) in one output of a notebook's cell,
# replacing what the same display showed before.
Display = Callable[[dict[str, str]], None]


def format_duration(seconds: float) -> str:
    """``'1h02m03s'`` or ``'2m03s'``: a number of seconds, for progress lines."""
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


def notebook_display(stream: object) -> Display | None:
    """Where ``stream`` is the output of a notebook's cell (an IPython kernel's stdout: Jupyter,
    Colab, VS Code), a :data:`Display` there: the first call shows its bundle as a new output of the
    cell, later ones update that output in place (IPython's ``display(..., display_id=True)`` and its
    handle's ``update``). None elsewhere, IPython in a terminal included (stdout is a terminal there).
    IPython is never imported here: a kernel has imported it already, and elsewhere it is not needed."""
    ipython = sys.modules.get('IPython')
    get_ipython = getattr(ipython, 'get_ipython', None)
    shell = get_ipython() if get_ipython is not None else None
    if getattr(shell, 'kernel', None) is None or not type(stream).__module__.startswith('ipykernel.'):
        return None
    from IPython.display import display

    handle = None

    def show(bundle: dict[str, str]) -> None:
        nonlocal handle
        if handle is None:
            handle = display(bundle, raw=True, display_id=True)
        else:
            handle.update(bundle, raw=True)

    return show


def _bar(step: int, total: int) -> str:
    done = int(BAR_WIDTH * step / max(total, 1))
    return f'[{"#" * done}{"." * (BAR_WIDTH - done)}]'


class Progress:
    """The run's progress lines: a live bar on a terminal (``bar=True``), one live bar in a
    notebook's cell (``bar=True``; ``display``, for tests: a :data:`Display` to show it with instead
    of the notebook's, :func:`notebook_display`), one line a record elsewhere. Messages (the start,
    the evaluations, the end) are lines of their own everywhere: below the notebook's bar, which
    stays where it first appeared."""
    def __init__(self, total_steps: int, *, bar: bool = True, stream: TextIO | None = None,
                 display: Display | None = None):
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.live = bar and self.stream.isatty()
        self.display = None if self.live or not bar else display or notebook_display(self.stream)
        self._last_len = 0

    def update(self, step: int, *, epoch: float, loss: float, accuracy: float,
               learning_rate: float, images_per_sec: float | None, eta_seconds: float | None) -> None:
        """The line of one training record: step, epoch, loss, accuracy, learning rate, images/s, eta."""
        eta = format_duration(eta_seconds) if eta_seconds is not None else '?'
        rate = f'{images_per_sec:.0f}' if images_per_sec else '?'
        text = (f'step {step}/{self.total} epoch {epoch:.2f} loss {loss:.4f} acc {accuracy:.4f} '
                f'lr {learning_rate:.4g} {rate} img/s eta {eta}')
        if self.live:
            line = f'\r{_bar(step, self.total)} {text}'
            self.stream.write(line + ' ' * max(0, self._last_len - len(line)))
            self._last_len = len(line)
        elif self.display is not None:
            self.display({'text/plain': f'{_bar(step, self.total)} {text}',
                          'text/html': f'<progress value="{step}" max="{max(self.total, 1)}" '
                                       'style="width: 20em; vertical-align: middle"></progress> '
                                       f'<code>{html.escape(text)}</code>'})
            return
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (the live bar, if any, ends first)."""
        if self.live and self._last_len:
            self.stream.write('\n')
            self._last_len = 0
        self.stream.write(text + '\n')
        self.stream.flush()


class StepTimer:
    """Time spent in training steps alone, evaluations, checkpoints and the compiling first step left
    out: per window (since the last record, :meth:`window_rate`) and in all (:meth:`total_rate`).

    The loop restarts it after each pause and stops it when the host has waited for the steps run
    since (only then has the device finished them)."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.seconds = self.images = 0.0
        self._window_seconds = self._window_images = 0.0
        self._since: float | None = None
        self._step = 0

    def restart(self, step: int) -> None:
        """Steps are timed again from ``step`` on."""
        self._since, self._step = time.perf_counter(), step

    def stop(self, step: int) -> None:
        """The steps up to ``step`` are done (the host has waited for them): their time counts."""
        if self._since is None:
            return
        seconds, images = time.perf_counter() - self._since, (step - self._step) * self.images_per_step
        self.seconds += seconds
        self.images += images
        self._window_seconds += seconds
        self._window_images += images
        self._since = None

    def window_rate(self) -> float | None:
        """Images/s over the timed steps since the last call (None: none timed, say only the compiling one)."""
        rate = self._window_images / self._window_seconds if self._window_seconds > 0 and self._window_images else None
        self._window_seconds = self._window_images = 0.0
        return rate

    def total_rate(self) -> float | None:
        """Images/s over every timed step of the run (None: none timed)."""
        return self.images / self.seconds if self.seconds > 0 and self.images else None
