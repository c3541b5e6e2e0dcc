"""Stopping a long job cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler preempting it).

    with StopRequest() as stop:
        for ...:
            step()
            if stop.signal:            # finish the step, save, then end with stop.exit_code
                save(); break

The first signal is only recorded. The job checks `signal` between steps, saves and ends with
exit status 128 + the signal number (130 for SIGINT, 143 for SIGTERM: what a shell reports for a
process those signals ended), so a scheduler's grace period between SIGTERM and SIGKILL is spent
saving. A second signal ends the process at once by that signal's default action, as kill -9
would: the checkpoint on disk is then the previous one. A repeat within REPEAT_WINDOW seconds of
the first is the same request arriving twice, not a second one: a terminal's Ctrl-C reaches
torchrun and its workers alike, and torchrun forwards it to the workers again.

Handlers are installed only in the main thread (Python allows no other) and the previous ones
are put back when the block ends.
"""
from __future__ import annotations

import os
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_WINDOW = 1.0  # seconds


class StopRequest:
    def __init__(self, announce: bool = True):
        self.announce = announce  # say so on stderr when a signal arrives (one process of several: False)
        self.signal = 0  # the first signal received; 0 while none
        self._first = 0.0
        self._previous: dict = {}

    @property
    def exit_code(self) -> int:
        return 128 + self.signal if self.signal else 0

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if not self.signal:
            self.signal, self._first = signum, now
            if not self.announce:
                return
            # os.write, not print: the handler may run while the main thread is inside a print to stderr
            os.write(2, f"\n{signal.Signals(signum).name}: finishing this step and saving; send it again to "
                        "stop at once\n".encode())
            return
        if now - self._first < REPEAT_WINDOW:
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
