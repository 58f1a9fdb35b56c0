"""The worker process: loads the target, then runs the cases the parent sends, one at a time.

Started by ``WorkerAdapter`` (``isolation.py``), which calls ``main([TARGET])`` in a fresh interpreter.
It speaks length-prefixed pickles over private copies of its stdin and stdout; the adapter's own
output (prints, warnings, a fatal signal's Python stack) goes to stderr, a file the parent keeps as
a fault's detail. Replies:

- ``("ready", name, capabilities, environment)`` or ``("error", message)`` after loading;
- ``("ok", outcome, changed, environment)``: ``run`` returned ``outcome``;
- ``("raised", type name, qualified name, message, traceback, state, changed, environment)``, where
  ``state`` is the ``Outcome`` the adapter attached with ``contract.with_state`` (or None);
- ``("fault", reason, environment)``: nothing a check can judge (see ``plain``).

``changed`` holds the case's arrays the backend modified in place; ``environment`` is sent again
only when the run imported another backend module (else None).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from dataclasses import fields
from typing import Any

import numpy as np

from ..adapters.contract import Capabilities, Case, Outcome, ReplicaState, state_of
from ..errors import BnspecError

_HEADER = 8  # bytes of the little-endian frame length


# -- framing, shared with the parent --------------------------------------------------------------

class Expired(Exception):
    """No whole frame arrived before the deadline."""


def frame(message: Any) -> bytes:
    """``message`` pickled, behind its length."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "little") + data


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, message: Any) -> None:
    write(fd, frame(message))


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    """``n`` bytes from ``fd``; ``EOFError`` when it closes, ``Expired`` past ``deadline``."""
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise Expired
        chunk = os.read(fd, min(n - len(buf), 1 << 22))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_frame(fd: int, deadline: float | None = None) -> bytes:
    """One message's pickle, not yet unpickled."""
    size = int.from_bytes(_read_exact(fd, _HEADER, deadline), "little")
    return _read_exact(fd, size, deadline)


def receive(fd: int, deadline: float | None = None) -> Any:
    return pickle.loads(read_frame(fd, deadline))


# -- running cases ----------------------------------------------------------------------------------

def plain(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot come back to the parent as it is, or None when it can.

    NumPy arrays and scalars, Python numbers, strings and None, and lists, tuples, dicts and
    ``Outcome`` (and its ``ReplicaState``) objects of those come back unchanged, so the checks judge them as they would
    in-process (a list instead of an ``Outcome`` still fails its check). Anything else (a framework
    tensor, an object of the adapter's own classes) does not.
    """
    if depth > 4:
        return "is nested too deeply"
    if value is None or type(value) in (bool, int, float, complex, str):
        return None
    root = type(value).__module__.split(".")[0]
    if isinstance(value, np.ndarray):
        if root not in ("numpy", "ml_dtypes") or value.dtype.hasobject:
            return f"is a {type(value).__module__}.{type(value).__name__} of dtype {value.dtype}, not a plain NumPy array"
        return None
    if isinstance(value, np.generic):
        return None if root in ("numpy", "ml_dtypes") and not isinstance(value, np.object_) else "is an odd scalar"
    if type(value) in (Outcome, ReplicaState):  # the contract's own result types
        for f in fields(value):
            why = plain(getattr(value, f.name), depth + 1)
            if why:
                return f"has {f.name} that {why}"
        return None
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            why = plain(item, depth + 1)
            if why:
                return f"has item {i} that {why}"
        return None
    if type(value) is dict:
        for k, item in value.items():
            why = plain(k, depth + 1) or plain(item, depth + 1)
            if why:
                return f"has entry {k!r} that {why}"
        return None
    return f"is a {type(value).__module__}.{type(value).__qualname__}"


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a backend's exception may be broken; so says check.describe_error
        return "<str() of the exception raised>"


def _safe_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # noqa: BLE001
        return f"{type(exc).__qualname__} (its traceback could not be formatted)"


def _arrays(case: Case) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(case).items() if isinstance(v, np.ndarray)}


def _changed(case: Case, before: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, old in before.items():
        new = getattr(case, name)
        if not isinstance(new, np.ndarray):
            continue
        if new.shape != old.shape or new.dtype != old.dtype or new.tobytes() != old.tobytes():  # bit for bit
            out[name] = np.array(new, copy=True)
    return out


class _Environment:
    """The worker's environment, sent again whenever the run imported another backend module."""

    def __init__(self, device: str, adapter_module: str = "") -> None:
        self.device, self.adapter_module = device, adapter_module
        self.seen: tuple[str, ...] | None = None  # the backend modules imported when last sent

    def changed(self) -> dict[str, Any] | None:
        from .results import BACKEND_MODULES, environment

        now = tuple(m for m in BACKEND_MODULES if m in sys.modules)
        if now == self.seen:
            return None
        self.seen = now
        return environment(BACKEND_MODULES, self.device, self.adapter_module)


def _run_one(adapter: Any, case: Case, env: _Environment) -> tuple[Any, ...]:
    before = {k: v.copy() for k, v in _arrays(case).items()}
    try:
        result = adapter.run(case)
    except Exception as exc:  # noqa: BLE001 - the backend's exception is what the checks judge
        state = state_of(exc)
        if state is not None and plain(state):
            state = None  # what cannot come back plainly is not sent: the refusal is judged alone
        return ("raised", type(exc).__name__, f"{type(exc).__module__}.{type(exc).__qualname__}", safe_str(exc),
                _safe_traceback(exc), state, _changed(case, before), env.changed())
    except BaseException as exc:  # noqa: BLE001 - SystemExit and the like: not an answer a check can judge
        return ("fault", f"run() raised {type(exc).__name__}: {safe_str(exc)[:200]}, which is not an Exception",
                env.changed())
    why = plain(result)
    if why:
        return ("fault", f"run() returned a value that {why}; an adapter returns an Outcome of NumPy arrays",
                env.changed())
    return ("ok", result, _changed(case, before), env.changed())


def _watch_parent() -> None:
    """End the worker when the process that started it is gone (killed without cleaning up)."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(70)


def _load(target: str) -> tuple[Any, tuple[Any, ...]]:
    from ..adapters import load

    try:
        adapter = load(target)
        name, caps = str(adapter.name), adapter.capabilities
        if not isinstance(caps, Capabilities):
            raise TypeError(f"its capabilities is a {type(caps).__name__}, not a bnspec.Capabilities")
        # A plain Capabilities: a subclass from the adapter's module could not be unpickled there.
        copy = Capabilities(**{f.name: getattr(caps, f.name) for f in fields(Capabilities)})
    except BnspecError as exc:
        return None, ("error", safe_str(exc))
    except BaseException as exc:  # noqa: BLE001 - an adapter's import may fail in any way
        return None, ("error", f"{type(exc).__name__}: {safe_str(exc)}")
    return adapter, ("ready", name, copy, _Environment(copy.device, type(adapter).__module__))


def main(argv: list[str]) -> int:
    # The protocol keeps private copies of stdin and stdout; the adapter's prints go to stderr.
    rfd, wfd = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import faulthandler

    faulthandler.enable()  # a fatal signal's Python stack lands in the parent's detail
    threading.Thread(target=_watch_parent, daemon=True).start()
    adapter, reply = _load(argv[0])
    if adapter is None:
        send(wfd, reply)
        return 0
    env = reply[3]
    send(wfd, reply[:3] + (env.changed(),))
    while True:
        try:
            request = receive(rfd)
        except EOFError:
            return 0
        answer = _run_one(adapter, request[1], env)
        try:
            send(wfd, answer)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            send(wfd, ("fault", f"the result could not be sent back: {type(exc).__name__}: {safe_str(exc)}",
                        env.changed()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
