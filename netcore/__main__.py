"""``python -m netcore`` is the ``netcore`` command."""

import sys

from netcore.cli import main

sys.exit(main())
