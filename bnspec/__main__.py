"""``python -m bnspec``: the same as the ``bnspec`` command."""

import sys

from .cli import main

sys.exit(main())
