import sys

from ocibuild.cli import main

sys.exit(main())
