"""Progress output: a live one-line bar on a terminal, plain log lines elsewhere (files, CI, pipes)."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
    def __init__(self, total_steps: int, *, bar: bool = True, stream=None):
        self.total = total_steps
        self.stream = stream or sys.stdout
        self.live = bar and self.stream.isatty()
        self._last_len = 0

    def update(self, step: int, *, epoch: float, loss: float, accuracy: float,
               learning_rate: float, images_per_sec: float | None, eta_seconds: float | None) -> None:
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
        if self.live and self._last_len:
            self.stream.write('\n')
            self._last_len = 0
        self.stream.write(text + '\n')
        self.stream.flush()


class Throughput:
    """Images per second over the steps since the last call (host time between syncs)."""

    def __init__(self):
        self.reset(0)

    def reset(self, step: int) -> None:
        self._t = time.perf_counter()
        self._step = step

    def rate(self, step: int, batch_size: int) -> float:
        now = time.perf_counter()
        elapsed = now - self._t
        rate = (step - self._step) * batch_size / elapsed if elapsed > 0 else 0.0
        self._t, self._step = now, step
        return rate
