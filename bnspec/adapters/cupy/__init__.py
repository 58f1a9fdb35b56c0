"""The ``cupy`` adapter: bnspec's own batch norm in CUDA kernels, run through CuPy.

``kernels`` generates the CUDA source, ``plan`` the shape logic and launch arithmetic, ``ops`` the
order of launches on device arrays, ``device`` the CuPy backend, ``adapter`` the suite's adapter.
Importing this package imports neither CuPy nor anything that needs a GPU.
"""

from .adapter import CupyAdapter

__all__ = ["CupyAdapter"]
