"""``python -m engagelab.cli``: the same as the ``engagelab`` command."""

import sys

from engagelab.cli.app import main

sys.exit(main())
