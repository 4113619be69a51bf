"""``python -m drivers.zk_terminal.sim``: run the simulator (see ``device.main``)."""

import sys

from drivers.zk_terminal.sim.cli import main

sys.exit(main())
