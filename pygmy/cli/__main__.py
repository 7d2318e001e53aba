"""C{python -m pygmy.cli}: the same as the C{pygmy} command."""

import sys

from pygmy.cli.command import main

sys.exit(main())
