"""A device source whose calls may hang, waited for a bounded time.

NVML calls hang on a driver in a bad state or a GPU fallen off the bus
(``nvidia-smi`` hangs with them), and a TPU library can do the same. Called
from the collector thread, one such call stopped every cycle: the monitor
showed its last snapshot as if live and ``ttop --once`` never printed.

:class:`BoundedSource` runs the source's ``sample()`` in a thread of its own
and waits for it at most :data:`SAMPLE_TIMEOUT` seconds. Past that the cycle
goes on with no devices and an error that says since when the call has not
returned; while that call is still out no other is made (the next cycles
do not wait at all), and once it returns its sample is taken and the next
cycle asks again. Everything else of the source is used as it is.
``TTOP_DEVICE_TIMEOUT`` (seconds) sets another bound.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

#: Seconds a cycle waits for a device sample.
SAMPLE_TIMEOUT = 5.0

_NONE = object()


def sample_timeout() -> float:
    """:data:`SAMPLE_TIMEOUT`, or ``TTOP_DEVICE_TIMEOUT`` where that is a positive number."""
    try:
        value = float(os.environ.get("TTOP_DEVICE_TIMEOUT", ""))
    except ValueError:
        return SAMPLE_TIMEOUT
    return value if value > 0 else SAMPLE_TIMEOUT


class BoundedSource:
    def __init__(self, source: Any, empty: Callable[[str], Any], what: str) -> None:
        self.source = source
        self._empty = empty  # a sample with no devices and this error
        self._what = what
        self._timeout = sample_timeout()
        self._cond = threading.Condition()
        self._since = None  # type: Any  # when the call out started (monotonic), None: none out
        self._asked = False
        self._result: Any = _NONE
        self._thread = None  # type: Any

    def __getattr__(self, name: str) -> Any:  # the source's other attributes, as they are
        return getattr(self.__dict__["source"], name)

    def sample(self) -> Any:
        with self._cond:
            if self._since is None:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="ttop-device-sample", daemon=True)
                    self._thread.start()
                self._since = time.monotonic()
                self._asked = True
                self._cond.notify_all()
            deadline = self._since + self._timeout
            while self._result is _NONE:
                now = time.monotonic()
                if now >= deadline:
                    return self._empty("%s not responding: a call has not returned for %.0f s (since %s)" % (
                        self._what, now - self._since, time.strftime("%H:%M:%S", time.localtime(
                            time.time() - (now - self._since)))))
                self._cond.wait(deadline - now)
            result, self._result, self._since = self._result, _NONE, None
        if isinstance(result, Exception):
            raise result
        return result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._asked:
                    self._cond.wait()
                self._asked = False
            try:
                result = self.source.sample()
            except Exception as e:  # raised in the collector thread, as before
                result = e
            with self._cond:
                self._result = result
                self._cond.notify_all()
