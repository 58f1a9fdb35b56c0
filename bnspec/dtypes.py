"""The floating dtypes the spec knows, by name, with their unit roundoff.

NumPy has no bfloat16; where the optional ``ml_dtypes`` package is installed its bfloat16 is
used, and otherwise bfloat16 cases cannot be expressed (the suite reports them unsupported).
"""

from __future__ import annotations

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


def bfloat16() -> Any | None:
    """NumPy's bfloat16 dtype from ml_dtypes, or None where ml_dtypes is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


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
    """The NumPy dtype for a spec dtype name; bfloat16 needs ml_dtypes."""
    if name == "bfloat16":
        dt = bfloat16()
        if dt is None:
            raise ImportError("bfloat16 needs the ml_dtypes package: pip install ml_dtypes")
        return dt
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
