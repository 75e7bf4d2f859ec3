"""python -m verify: the claims report (see verify.cli)."""
import sys

from .cli import main

sys.exit(main())
