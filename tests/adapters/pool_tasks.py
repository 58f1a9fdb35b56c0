"""Functions the worker-pool tests run inside worker processes (``bnspec.adapters.replica_pool``)."""

from __future__ import annotations

import os
import time
from typing import Any


def init(rank: int, size: int, tag: str = "") -> dict[str, Any]:
    return {"rank": rank, "size": size, "tag": tag}


def describe(state: dict[str, Any], payload: Any) -> tuple[int, int, str, Any, int]:
    """Who answered: rank, pool size, the init tag, the payload echoed, the process id."""
    return state["rank"], state["size"], state["tag"], payload, os.getpid()


def fail_on(state: dict[str, Any], ranks: list[int]) -> int:
    if state["rank"] in ranks:
        raise ValueError(f"replica {state['rank']} was told to fail")
    return state["rank"]


def sleep(state: dict[str, Any], seconds: float) -> None:
    time.sleep(seconds)


def exit_now(state: dict[str, Any], code: int) -> None:
    os._exit(code)


def shout(state: dict[str, Any], payload: Any) -> str:
    print("stray output on stdout must not break the channel")  # noqa: T201
    return "heard"


def init_fails(rank: int, size: int) -> None:
    raise RuntimeError("no rendezvous")
