"""Shared test settings: hypothesis profiles.

``default`` runs locally; ``ci`` draws fewer examples and is chosen automatically where the ``CI``
environment variable is set (as ``.ci/run`` has it); ``full`` draws many:
``pytest --hypothesis-profile=full``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("full", max_examples=500, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")
