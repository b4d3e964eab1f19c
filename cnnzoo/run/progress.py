"""Progress output: a live one-line bar on a terminal, plain log lines elsewhere (files, CI, pipes);
and the timer of the training steps the progress lines report."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    """``'1h02m03s'`` or ``'2m03s'``: a number of seconds, for progress lines."""
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
    """The run's progress lines: a live bar on a terminal (``bar=True``), one line a record elsewhere."""
    def __init__(self, total_steps: int, *, bar: bool = True, stream=None):
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.live = bar and self.stream.isatty()
        self._last_len = 0

    def update(self, step: int, *, epoch: float, loss: float, accuracy: float,
               learning_rate: float, images_per_sec: float | None, eta_seconds: float | None) -> None:
        """The line of one training record: step, epoch, loss, accuracy, learning rate, images/s, eta."""
        eta = format_duration(eta_seconds) if eta_seconds is not None else '?'
        rate = f'{images_per_sec:.0f}' if images_per_sec else '?'
        text = (f'step {step}/{self.total} epoch {epoch:.2f} loss {loss:.4f} acc {accuracy:.4f} '
                f'lr {learning_rate:.4g} {rate} img/s eta {eta}')
        if self.live:
            width = 24
            done = int(width * step / max(self.total, 1))
            line = f'\r[{"#" * done}{"." * (width - done)}] {text}'
            self.stream.write(line + ' ' * max(0, self._last_len - len(line)))
            self._last_len = len(line)
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
        self._since = self._step = None

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
