"""Shared test settings: hypothesis profiles.

``default`` runs locally; ``ci`` draws fewer examples and is chosen automatically where the ``CI``
environment variable is set (as ``.ci/run`` has it); ``full`` draws many:
``pytest --hypothesis-profile=full``.
"""

import importlib.util
import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("full", max_examples=500, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# PaddlePaddle 3.3.1 dies with SIGSEGV when it is imported after TensorFlow 2.21 in one process
# (measured: `python -c "import tensorflow; import paddle"` exits 139; the other order, and paddle
# after torch, jax, mlx or tinygrad, work). bnspec runs each adapter in a process of its own, so only
# the tests that load both frameworks in-process meet it: paddle is imported first, where installed.
if importlib.util.find_spec("paddle") is not None:
    try:
        import paddle  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken paddle makes its own tests skip or fail, not every test
        pass
