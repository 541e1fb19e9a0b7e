"""``python -m bridge`` is ``mqtt-redis-bridge``."""

import sys

from bridge.cli import main

sys.exit(main())
