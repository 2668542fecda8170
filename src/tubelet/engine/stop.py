"""Graceful stop on SIGTERM / SIGINT (issue 13, item 8).

A signal only sets a flag; the trainer checks it after each optimizer step, so the step in flight
finishes, a checkpoint and ``summary.json`` are written, and ``--resume`` continues exactly. A
second signal gets the previous handler (a second Ctrl-C interrupts at once; every file is written
atomically, so nothing is left half-written either way).
"""
from __future__ import annotations

import signal
import threading

from tubelet.engine import dist

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Context manager: while active, SIGTERM / SIGINT set :attr:`signal_name` instead of killing
    the process. Inert outside the main thread (Python delivers signals there only)."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        # the next signal of any kind takes the previous route (KeyboardInterrupt / termination)
        for s, h in self._previous.items():
            signal.signal(s, h)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def requested(self, world: int = 1) -> bool:
        """Whether any process got a stop signal (all ranks agree, so they stop at one step)."""
        if world <= 1:
            return self.signal_name is not None
        names = dist.all_gather_object(self.signal_name)
        self.signal_name = self.signal_name or next((n for n in names if n), None)
        return self.signal_name is not None

