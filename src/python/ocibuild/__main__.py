"""`python -m ocibuild`: the same as the `ocibuild` command."""

import sys

from ocibuild.cli import main

sys.exit(main())
