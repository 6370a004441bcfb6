"""``python -m poisonguard.cli``."""

import sys

from poisonguard.cli.main import main

sys.exit(main())
