"""Isolation: the adapter runs in a worker process; the suite (hypothesis, reference, judging) here.

Backends under test are the code most likely to crash, hang or return garbage, so the process that
keeps the results never runs them. ``WorkerAdapter`` stands in for the adapter: it has the
adapter's ``name`` and ``capabilities`` (fetched from a worker that loaded the target) and its
``run(case)`` sends the case to the worker and returns the ``Outcome`` that comes back.

What the backend raises comes back as a ``RemoteError`` carrying the same type name and message,
so the checks that expect an error (BN-ARG-*) judge it exactly as they would in-process; arrays of
the case the backend modified in place are copied back, so BN-IO-1 sees the mutation. What no
check can judge raises a ``WorkerFault`` instead: the worker died (``WorkerCrash``), outlived the
per-case ``timeout`` (``WorkerTimeout``), or returned what cannot come back as NumPy arrays
(``BadResult``). A fault is a ``BaseException`` so that no check's ``except Exception`` takes it
for the backend's answer; the runner turns it into the check's status, and the next ``run``
starts a fresh worker.

The worker's side is ``isolated_process.py``. The adapter's own output (prints, warnings, a fatal
signal's Python stack) goes to a file kept here as a fault's detail, never to the terminal.
POSIX only: the parent waits on the pipe with ``select``.
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, ClassVar

import numpy as np

from ..adapters.contract import Capabilities, Case, Outcome, with_state
from ..errors import BnspecError, InvalidArgument
from .isolated_process import Expired, frame, read_frame, receive, write

DEFAULT_TIMEOUT = 60.0  # seconds per case; a first call that compiles kernels stays well inside it
RETRY_FACTOR = 3.0  # a timed-out case gets one more try, in a fresh worker, with this many times the time
START_TIMEOUT = 300.0  # seconds to import and instantiate the adapter (TensorFlow, JAX take a while)
_DETAIL_LIMIT = 4000  # characters of the worker's output kept as a fault's detail
# Not ``-m``: the package imports isolated_process already, and runpy would warn and run a second copy.
_ENTRY = "import sys; from bnspec.conformance.isolated_process import main; sys.exit(main(sys.argv[1:]))"


# -- what the parent raises --------------------------------------------------------------------------

class WorkerFault(BaseException):
    """The worker could not answer for a case; ``status`` is the check's status in the report."""

    status: ClassVar[str] = "error"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason  # one line, for the terminal
        self.detail = detail  # the worker's output or traceback, for the JSON report


class WorkerCrash(WorkerFault):
    """The worker process ended while running a case (a signal, ``os._exit``, a lost pipe)."""

    status = "crash"


class WorkerTimeout(WorkerFault):
    """The case ran longer than the per-case timeout; the worker was killed."""

    status = "timeout"


class BadResult(WorkerFault):
    """``run`` returned something that cannot come back as an ``Outcome`` of NumPy arrays."""

    status = "error"


class WorkerLoadError(BnspecError, RuntimeError):
    """The worker could not load the target (the message says why, as an in-process load would)."""


class RemoteError(Exception):
    """The backend's exception, raised again here under its own type name and with its message.

    ``remote_type`` is the exception's qualified type, ``remote_traceback`` its traceback in the
    worker. The class is made per type name (``remote_class``) so that ``type(exc).__name__``
    reads as it would in-process.
    """

    remote_type: str = ""
    remote_traceback: str = ""


_REMOTE_CLASSES: dict[str, type[RemoteError]] = {}


def remote_class(name: str) -> type[RemoteError]:
    """A ``RemoteError`` subclass named ``name`` (one per name)."""
    if name not in _REMOTE_CLASSES:
        _REMOTE_CLASSES[name] = type(name, (RemoteError,), {"__module__": __name__})
    return _REMOTE_CLASSES[name]


# -- the parent's side -----------------------------------------------------------------------------

def _exit_text(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _Worker:
    """One worker process: its pipes and the file its output goes to."""

    def __init__(self, target: str) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ)
        # The worker imports what this process can: a module:attr target found through sys.path
        # here (a test's rootdir, say) must be found there too.
        paths = [p or os.getcwd() for p in sys.path]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        # A session of its own: Ctrl-C on the terminal reaches this process only, which stops the
        # run and ends the worker itself.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()

    def output_since(self, offset: int) -> str:
        """What the worker wrote to its stderr from ``offset`` on (the tail, when long)."""
        try:
            self.log.seek(offset)
            text = self.log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text if len(text) <= _DETAIL_LIMIT else "...\n" + text[-_DETAIL_LIMIT:]

    def offset(self) -> int:
        try:
            return self.log.seek(0, os.SEEK_END)
        except (OSError, ValueError):
            return 0

    def kill(self) -> int | None:
        """End the worker and anything it started; its exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        return code

    def close(self) -> None:
        """Ask the worker to finish (its stdin closes), then make sure it has."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()
        self.log.close()


class WorkerAdapter:
    """The adapter of ``target``, run case by case in a worker process (see the module docstring).

    ``timeout`` is the limit in seconds for one case. Raises ``WorkerLoadError`` when the target
    cannot be loaded. Call ``close`` (or use it as a context manager) to end the worker.
    """

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT, start_timeout: float = START_TIMEOUT) -> None:
        for label, value in (("timeout", timeout), ("start_timeout", start_timeout)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidArgument(f"{label}={value!r} must be a positive number of seconds")
        self.target, self.timeout, self.start_timeout = target, float(timeout), float(start_timeout)
        self.restarts = 0
        self._env: dict[str, Any] = {}
        self._worker: _Worker | None = None
        self._case_offset = 0  # where the current case's output begins in the worker's log
        self.name, self.capabilities = self._start()

    def _start(self) -> tuple[str, Capabilities]:
        worker = _Worker(self.target)
        try:
            reply = receive(worker.rfd, time.monotonic() + max(self.start_timeout, self.timeout))
        except Expired:
            worker.close()
            raise WorkerLoadError(f"the worker did not load {self.target!r} within "
                                  f"{max(self.start_timeout, self.timeout):.0f} s") from None
        except (EOFError, OSError, pickle.UnpicklingError):
            code = worker.kill()
            detail = worker.output_since(0).strip().splitlines()
            worker.close()
            last = f": {detail[-1]}" if detail else ""
            raise WorkerLoadError(f"the worker loading {self.target!r} ended ({_exit_text(code)}){last}") from None
        except BaseException:
            worker.close()
            raise
        if reply[0] != "ready":
            worker.close()
            raise WorkerLoadError(reply[1])
        _, name, caps, env = reply
        self._worker, self._env = worker, env
        return name, caps

    def _live(self) -> _Worker:
        if self._worker is None:
            try:
                self._start()
            except WorkerLoadError as exc:
                raise WorkerCrash(f"could not start a fresh worker: {exc}") from None
            self.restarts += 1
        assert self._worker is not None
        return self._worker

    def _retire(self) -> tuple[int | None, str]:
        """Kill the current worker; its exit code and what it wrote since the case began."""
        worker, self._worker = self._worker, None
        if worker is None:
            return None, ""
        code = worker.kill()
        text = worker.output_since(self._case_offset)
        worker.close()
        return code, text

    def run(self, case: Case) -> Outcome:
        """Run ``case`` in the worker; what the backend raised is raised here as a ``RemoteError``.

        A case that outlives the timeout is tried once more, in a fresh worker, with ``RETRY_FACTOR``
        times the time: a slow or busy machine is not a nonconforming backend. Only when that fails
        too is it a ``WorkerTimeout`` (status timeout: the check is not judged).
        """
        try:
            return self._run(case, self.timeout)
        except WorkerTimeout:
            pass
        longer = self.timeout * RETRY_FACTOR
        try:
            return self._run(case, longer)
        except WorkerTimeout as again:
            raise WorkerTimeout(f"no result within the timeout of {self.timeout:g} s, nor within {longer:g} s on a "
                                f"second try in a fresh worker; the worker was killed", again.detail) from None

    def _run(self, case: Case, timeout: float) -> Outcome:
        request = frame(("run", case))  # a case that cannot be pickled is the suite's own error: raised as is
        worker = self._live()
        self._case_offset = worker.offset()
        try:
            write(worker.wfd, request)
            data = read_frame(worker.rfd, time.monotonic() + timeout)
        except Expired:
            _, text = self._retire()
            raise WorkerTimeout(f"no result within {timeout:g} s; the worker was killed", text) from None
        except (EOFError, OSError):
            code, text = self._retire()
            raise WorkerCrash(f"the worker died ({_exit_text(code)})", text) from None
        except BaseException:  # Ctrl-C or SIGTERM while the case runs: the worker is mid-case, end it
            self._retire()
            raise
        try:
            reply = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - whatever unpickling raises, the result cannot come back
            raise BadResult(f"the result could not be read back: {type(exc).__name__}: {exc}",
                            worker.output_since(self._case_offset)) from None
        kind = reply[0]
        if reply[-1]:
            self._env = reply[-1]
        if kind == "fault":  # the worker itself is fine: it keeps running the next cases
            raise BadResult(reply[1], worker.output_since(self._case_offset))
        _copy_back(case, reply[-2])
        if kind == "ok":
            return reply[1]  # type: ignore[no-any-return]
        _, type_name, qualname, message, tb = reply[:5]
        if type_name == "MemoryError":  # the worker may be left short of memory: start afresh
            self._retire()
        exc = remote_class(type_name)(message)
        exc.remote_type, exc.remote_traceback = qualname, tb
        if reply[5] is not None:
            with_state(exc, reply[5])
        raise exc

    def environment(self) -> dict[str, Any]:
        """Versions of Python, NumPy and the backend, and the device, as the worker saw them."""
        return dict(self._env)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> WorkerAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
            pass

    def __repr__(self) -> str:
        return f"WorkerAdapter({self.target!r}, timeout={self.timeout:g})"


def _copy_back(case: Case, changed: dict[str, np.ndarray]) -> None:
    """Apply to ``case`` what the backend did to its copy in the worker (BN-IO-1 judges it)."""
    for name, new in changed.items():
        old = getattr(case, name)
        if (isinstance(old, np.ndarray) and old.shape == new.shape and old.dtype == new.dtype
                and old.flags.writeable):
            np.copyto(old, new)
        else:
            object.__setattr__(case, name, new)
