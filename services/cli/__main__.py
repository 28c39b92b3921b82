"""python -m services.cli: the same as the ``herald`` command."""

import sys

from .commands import main

sys.exit(main())
