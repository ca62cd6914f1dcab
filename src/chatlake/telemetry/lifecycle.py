"""Process life cycle for telemetry clients: exit, SIGTERM and fork.

Hooks hold weak references, so a client that is dropped is not kept alive by
them. A client must provide ``close()`` and ``_after_fork_in_child()``.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref


def install(client: object, handle_sigterm: bool) -> None:
    """Close at exit (and on SIGTERM if asked, from the main thread); fork-aware."""
    ref = weakref.ref(client)
    atexit.register(_close_ref, ref)
    os.register_at_fork(after_in_child=lambda: _after_fork(ref))
    if handle_sigterm and threading.current_thread() is threading.main_thread():
        _chain_sigterm(ref)


def _close_ref(ref: weakref.ref) -> None:
    client = ref()
    if client is not None:
        client.close()


def _after_fork(ref: weakref.ref) -> None:
    client = ref()
    if client is not None:
        client._after_fork_in_child()


def _chain_sigterm(ref: weakref.ref) -> None:
    """Closes the client on SIGTERM, then does what was there before.

    The handler runs on the main thread, which may have been interrupted inside
    track() holding the queue lock, so closing happens on a helper thread. When
    it is done the helper sends SIGTERM again, and this time the handler passes
    it on to the previous handler (or the default: the process ends).
    """
    previous = signal.getsignal(signal.SIGTERM)
    state = {"closing": False, "closed": False}

    def close_then_resignal() -> None:
        _close_ref(ref)
        state["closed"] = True
        # To the main thread itself: sent to the process, the kernel may hand
        # it to this thread, and a main thread blocked in a read would then
        # never run the handler.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    def on_sigterm(signum, frame) -> None:
        if state["closed"]:
            _pass_on(previous, signum, frame)
        elif not state["closing"]:
            state["closing"] = True
            threading.Thread(
                target=close_then_resignal, name="chatlake-telemetry-close"
            ).start()

    signal.signal(signal.SIGTERM, on_sigterm)


def _pass_on(previous, signum, frame) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
