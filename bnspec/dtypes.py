"""The floating dtypes the spec knows, by name, with their unit roundoff.

NumPy has no bfloat16; the ``ml_dtypes`` package gives it one. Where ml_dtypes is missing, fails
to import or gets bfloat16 wrong, bfloat16 cases cannot be expressed: ``unavailable("bfloat16")``
says why, the suite draws no bfloat16 case, and nothing else changes. A dtype is identified by its
spec name (``dtype_name``), never by equality with a dtype object that may not exist here.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

DtypeName = Literal["float16", "bfloat16", "float32", "float64"]
FLOAT_DTYPES: tuple[DtypeName, ...] = ("float16", "bfloat16", "float32", "float64")

# Unit roundoff u = 2**-p for a p-bit significand (round to nearest).
UNIT_ROUNDOFF: dict[str, float] = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}

# Half the spacing of the subnormals is the absolute rounding error below the normal range.
SMALLEST_SUBNORMAL: dict[str, float] = {
    "float16": 2.0**-24,
    "bfloat16": 2.0**-133,
    "float32": 2.0**-149,
    "float64": 2.0**-1074,
}
# The largest finite value: an exact result beyond it may round to infinity.
LARGEST: dict[str, float] = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}


@functools.cache
def _bfloat16() -> tuple[np.dtype | None, str | None]:
    """ml_dtypes' bfloat16 as a NumPy dtype and None, or None and why it cannot be used."""
    advice = "bfloat16 needs the ml_dtypes package (pip install ml_dtypes)"
    try:
        import ml_dtypes

        dt = np.dtype(ml_dtypes.bfloat16)
        # 1, 3, 1 + 2**-8 (a tie: to even, 1), 1 + 3 * 2**-8 (a tie: to even, 1 + 2**-6), -2**-133
        # (the smallest subnormal): the rounding and encoding the spec's bfloat16 has.
        bits = np.array([1.0, 3.0, 1.00390625, 1.01171875, -(2.0**-133)]).astype(dt).view(np.uint16)
        wrong = dt.name != "bfloat16" or dt.itemsize != 2 or bits.tolist() != [0x3F80, 0x4040, 0x3F80, 0x3F82, 0x8001]
    except Exception as exc:  # noqa: BLE001 - absent, or installed but broken (built for another NumPy)
        return None, f"{advice}; importing it failed: {type(exc).__name__}: {exc}"
    if wrong:
        version = getattr(ml_dtypes, "__version__", "?")
        return None, f"{advice}; the installed ml_dtypes {version} does not round or encode bfloat16 correctly"
    return dt, None


def unavailable(name: str) -> str | None:
    """Why arrays of the spec dtype ``name`` cannot be made here (with what to install), or None.

    Only bfloat16 can be unavailable: it needs a working ml_dtypes. Raises ValueError for a name
    that is not one of ``FLOAT_DTYPES``."""
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype {name!r} is not one of {FLOAT_DTYPES}")
    return _bfloat16()[1] if name == "bfloat16" else None


def has_bfloat16() -> bool:
    """Whether bfloat16 arrays can be made here (a working ml_dtypes is installed)."""
    return _bfloat16()[0] is not None


def bfloat16() -> np.dtype:
    """NumPy's bfloat16 dtype from ml_dtypes.

    Raises ImportError, saying what to install, where ml_dtypes is missing or broken: never None,
    so that no comparison with it can silently hold for another dtype (``np.dtype(x) == None`` is
    True). To ask whether an array is bfloat16, compare ``dtype_name(a.dtype) == "bfloat16"``."""
    dt, why = _bfloat16()
    if dt is None:
        raise ImportError(why)
    return dt


def promoted(*names: str | None) -> str:
    """The floating dtype that holds every one of ``names`` (None skipped): the widest, and float32 for
    float16 with bfloat16 (neither holds the other). The compute dtype of profile promoted-dtype."""
    names_ = [n for n in names if n is not None]
    if not names_:
        return "float32"
    if "float16" in names_ and "bfloat16" in names_ and not {"float32", "float64"} & set(names_):
        return "float32"
    return max(names_, key=FLOAT_DTYPES.index)


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a spec dtype name.

    Raises ValueError for a name outside ``FLOAT_DTYPES``, ImportError (saying what to install) for
    bfloat16 where ml_dtypes is missing or broken (``unavailable``)."""
    if name == "bfloat16":
        return bfloat16()
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype {name!r} is not one of {FLOAT_DTYPES}")
    return np.dtype(name)


def dtype_name(dtype: Any) -> str | None:
    """The spec name of a floating dtype, or None for anything else (ints, bools, objects)."""
    dt = np.dtype(dtype)
    if dt.kind == "f" and dt.name in UNIT_ROUNDOFF:
        return dt.name
    if dt.name == "bfloat16":
        return "bfloat16"
    return None


def accumulation_roundoff(name: str) -> float:
    """u of the arithmetic BN-DTYPE-2 requires: at least float32 for half-precision inputs."""
    return min(UNIT_ROUNDOFF[name], UNIT_ROUNDOFF["float32"])
