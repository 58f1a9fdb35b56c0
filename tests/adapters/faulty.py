"""Adapters that really misbehave, each only on eval-mode cases (``training=False``).

Every other case runs the reference, so a run over ``train-output,eval-output,running-momentum``
shows the fault in ``eval-output`` (all of whose cases are eval) and two passing checks beside it.
``tests/test_faults.py`` runs them through ``bnspec run``.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import numpy as np

from bnspec import Case, Outcome
from bnspec.adapters.reference import ReferenceAdapter


class _Faulty(ReferenceAdapter):
    """The reference, except that ``fault`` replaces eval-mode calls."""

    def run(self, case: Case) -> Outcome:
        if case.training:
            return super().run(case)
        return self.fault(case)

    def fault(self, case: Case) -> Outcome:
        raise NotImplementedError


class Segfault(_Faulty):
    name = "segfault"

    def fault(self, case: Case) -> Outcome:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
        raise AssertionError("unreachable")


class Exit(_Faulty):
    name = "exit"

    def fault(self, case: Case) -> Outcome:
        os._exit(3)


class OutOfMemory(_Faulty):
    name = "out-of-memory"

    def fault(self, case: Case) -> Outcome:
        raise MemoryError("could not allocate 64 GiB")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


class UnprintableError(_Faulty):
    name = "unprintable-error"

    def fault(self, case: Case) -> Outcome:
        raise _Unprintable()


class Hang(_Faulty):
    """Sleeps (practically) forever; touches ``$BNSPEC_TEST_MARKER`` first when it is set."""

    name = "hang"

    def fault(self, case: Case) -> Outcome:
        marker = os.environ.get("BNSPEC_TEST_MARKER")
        if marker:
            Path(marker).touch()
        time.sleep(1e6)
        raise AssertionError("unreachable")


class WrongShape(_Faulty):
    name = "wrong-shape"

    def fault(self, case: Case) -> Outcome:
        out = ReferenceAdapter.run(self, case)
        out.y = out.y.reshape(-1)[:-1] if out.y.size > 1 else np.zeros((2, 2), out.y.dtype)
        return out


class WrongDtype(_Faulty):
    """Returns y as float16 whatever the input: too coarse for a float32 or float64 case."""

    name = "wrong-dtype"

    def fault(self, case: Case) -> Outcome:
        out = ReferenceAdapter.run(self, case)
        out.y = out.y.astype(np.float16)
        return out


class ReturnsList(_Faulty):
    name = "returns-list"

    def fault(self, case: Case) -> Outcome:
        out = ReferenceAdapter.run(self, case)
        return [out.y, out.running_mean]  # type: ignore[return-value]


class ReturnsNone(_Faulty):
    name = "returns-none"

    def fault(self, case: Case) -> Outcome:
        return None  # type: ignore[return-value]


class AllNan(_Faulty):
    name = "all-nan"

    def fault(self, case: Case) -> Outcome:
        out = ReferenceAdapter.run(self, case)
        out.y = np.full_like(out.y, np.nan)
        return out


class _Handle:
    """An object of the adapter's own: it cannot be read back outside the worker."""


class ReturnsForeign(_Faulty):
    """Returns an Outcome holding a foreign object where an array belongs (a framework tensor, say)."""

    name = "returns-foreign"

    def fault(self, case: Case) -> Outcome:
        out = ReferenceAdapter.run(self, case)
        out.y = _Handle()  # type: ignore[assignment]
        return out



class FailsThenCrashes(_Faulty):
    """Changes the running statistics on its first eval call (a failure), then dies on every later one:
    the worker dies while hypothesis shrinks the failure."""

    name = "fails-then-crashes"
    calls = 0

    def fault(self, case: Case) -> Outcome:
        type(self).calls += 1
        if type(self).calls > 1:
            os._exit(3)
        out = ReferenceAdapter.run(self, case)
        out.running_mean = out.running_mean + 1.0
        return out


class ExitOnNegativeEps(ReferenceAdapter):
    """Dies on a negative epsilon (where it should raise, BN-ARG-4): one crashing check in a full run."""

    name = "exit-on-negative-eps"

    def run(self, case: Case) -> Outcome:
        if case.eps < 0:
            os._exit(3)
        return super().run(case)
