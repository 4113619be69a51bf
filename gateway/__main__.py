"""``python -m gateway`` is the same as ``gatewayctl``."""

from gateway.cli import main

raise SystemExit(main())
