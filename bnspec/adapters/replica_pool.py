"""A pool of worker processes, one per replica, for adapters whose framework synchronizes processes.

Why not ``multiprocessing``: its ``spawn`` start method re-imports the parent's ``__main__``, and
``python -m bnspec`` runs the command from it. Each worker here is a fresh
``python -m bnspec.adapters.replica_pool`` process, talking to the parent over its stdin and stdout with
length-prefixed pickles. A call sends every worker a ``module:function`` and its own payload, and
waits for every answer with a deadline.

Hygiene, because a distributed backend that loses a peer tends to wait forever:
- every wait has a timeout; a worker that hangs, dies or garbles its answer takes the whole pool
  down (every worker killed by its process id), and the call raises ``PoolError`` saying which
  worker and why; the next call starts a fresh pool;
- workers never outlive the parent: the pool is closed at interpreter exit (``atexit``) and when it
  is garbage-collected, and each worker exits on its own when its parent is gone (its stdin closes,
  and a watchdog thread notices a new parent process id);
- a worker's stderr goes to a temporary file, whose tail is quoted when the worker fails.
Rendezvous and ports are the calling adapter's business (``torch_sync`` uses a file store and
loopback-only sockets).
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Sequence
from typing import Any, BinaryIO

from ..errors import BnspecError

_HEADER = struct.Struct("!Q")


class PoolError(BnspecError, RuntimeError):
    """A worker hung, died or broke the protocol; the pool was shut down."""


class ReplicaError(BnspecError, RuntimeError):
    """A worker's function raised; ``errors`` maps each failing replica to ``(type name, message)``."""

    def __init__(self, errors: dict[int, tuple[str, str]]) -> None:
        self.errors = errors
        first = min(errors)
        kind, text = errors[first]
        others = f" (and on replicas {', '.join(map(str, sorted(errors)[1:]))})" if len(errors) > 1 else ""
        super().__init__(f"replica {first} raised {kind}: {text}{others}")


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exactly(fd, size, deadline))


class Pool:
    """``size`` worker processes; ``init`` (a ``module:function``) runs once in each as
    ``init(rank, size, *init_args)`` and its return value is the worker's state."""

    def __init__(self, size: int, init: str, init_args: Sequence[Any] = (), *, env: dict[str, str] | None = None,
                 start_timeout: float = 120.0) -> None:
        self.size = size
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self._closed = False
        child_env = dict(os.environ, **(env or {}))
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), child_env.get("PYTHONPATH")) if p)
        try:
            for _ in range(size):
                log = tempfile.TemporaryFile()
                self._logs.append(log)
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bnspec.adapters.replica_pool", str(os.getpid())],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=child_env, close_fds=True,
                ))
            self.call(init, [(rank, size, *init_args) for rank in range(size)], timeout=start_timeout, init=True)
        except BaseException:
            self.close()
            raise
        # Closed at exit and when collected; the finalizer holds the processes, not the pool.
        self._finalizer = weakref.finalize(self, _kill_all, self._procs, self._logs)
        atexit.register(self._finalizer)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> bool:
        return not self._closed and all(p.poll() is None for p in self._procs)

    def call(self, function: str, payloads: Sequence[Any], *, timeout: float, init: bool = False) -> list[Any]:
        """Run ``function(state, payload)`` in worker ``r`` with ``payloads[r]``; the results, in order.

        Raises ``ReplicaError`` when the function raised in any worker (the pool stays up), and
        ``PoolError`` when a worker did not answer within ``timeout`` seconds, died or broke the
        protocol (the pool is closed).
        """
        if self._closed:
            raise PoolError("the worker pool is closed")
        if len(payloads) != self.size:
            raise ValueError(f"payloads has {len(payloads)} entries; the pool has {self.size} workers")
        deadline = time.monotonic() + timeout
        for rank, (proc, payload) in enumerate(zip(self._procs, payloads)):
            try:
                assert proc.stdin is not None
                _send(proc.stdin, ("init" if init else "call", function, payload))
            except (BrokenPipeError, OSError) as exc:
                self._fail(f"worker {rank} (pid {proc.pid}) is gone: {exc}")
        answers: list[Any] = []
        for rank, proc in enumerate(self._procs):
            assert proc.stdout is not None
            try:
                answers.append(_receive(proc.stdout.fileno(), deadline))
            except TimeoutError:
                self._fail(f"worker {rank} (pid {proc.pid}) did not answer {function} within {timeout:.0f} s "
                           "(hung, or waiting for a peer that failed)")
            except (EOFError, OSError, pickle.UnpicklingError, struct.error) as exc:
                try:
                    status = proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    status = None
                self._fail(f"worker {rank} (pid {proc.pid}) died or broke the protocol during {function} "
                           f"({type(exc).__name__}; exit status {status})")
        errors = {r: (a[1], a[2]) for r, a in enumerate(answers) if a[0] == "error"}
        if errors:
            raise ReplicaError(errors)
        return [a[1] for a in answers]

    def _fail(self, why: str) -> None:
        tails = [f"worker {r} stderr: {_tail(log)}" for r, log in enumerate(self._logs) if _tail(log)]
        self.close()
        raise PoolError(why + ("; " + " | ".join(tails) if tails else ""))

    def close(self) -> None:
        """Kill every worker (by its process id) and wait for it; safe to call twice."""
        self._closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            atexit.unregister(finalizer)
            finalizer()
        else:
            _kill_all(self._procs, self._logs)


def _kill_all(procs: list[subprocess.Popen[bytes]], logs: list[Any]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
    for log in logs:
        log.close()


def _tail(log: Any, limit: int = 600) -> str:
    try:
        log.seek(0, os.SEEK_END)
        size = log.tell()
        log.seek(max(0, size - limit))
        return log.read().decode(errors="replace").strip().replace("\n", " / ")
    except (OSError, ValueError):
        return ""


def _package_root() -> str:
    """The folder holding the ``bnspec`` package, so a worker imports the same bnspec as its parent."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resolve(function: str) -> Any:
    module, _, attr = function.partition(":")
    return getattr(importlib.import_module(module), attr)


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (re-parented), even while stuck in a collective."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def worker_main(parent: int) -> None:
    """The worker loop: read a request, run it, write the answer; exit on EOF."""
    inbox = sys.stdin.buffer
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the channel
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    state: Any = None
    while True:
        try:
            kind, function, payload = _receive(inbox.fileno(), None)
        except EOFError:
            return
        try:
            if kind == "init":
                state = _resolve(function)(*payload)
                answer: tuple[Any, ...] = ("ok", None)
            else:
                answer = ("ok", _resolve(function)(state, payload))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
            answer = ("error", type(exc).__name__, str(exc)[:2000], traceback.format_exc()[-4000:])
        _send(outbox, answer)


if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
