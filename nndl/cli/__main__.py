"""``python -m nndl.cli``: the same as ``python -m nndl`` and the ``nndl`` command."""

import sys

from nndl.cli import main

sys.exit(main())
