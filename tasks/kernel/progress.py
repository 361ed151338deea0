"""Progress of long steps, for whoever is watching (the CLI's progress bars when on a terminal).

Tasks call ``advance``; nothing listens unless a front end calls ``listen``.  The
listener is per process: task runs are threads of the process that ran the flow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# Called as listener(step, amount, total): ``step`` moved by ``amount`` of ``total`` (None: size unknown).
Listener = Callable[[str, int, int | None], None]


_lock = threading.Lock()
_listener: Listener | None = None


def listen(listener: Listener | None) -> None:
    """Set (or clear, with None) the process's progress listener."""
    global _listener
    with _lock:
        _listener = listener


def advance(step: str, amount: int = 0, total: int | None = None) -> None:
    """Report progress on a step; a no-op when nobody listens."""
    listener = _listener
    if listener is not None:
        listener(step, amount, total)
