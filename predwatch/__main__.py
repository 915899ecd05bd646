"""``python -m predwatch``: the command line."""
import sys

from predwatch.cli import main

sys.exit(main())
