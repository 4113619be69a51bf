"""The package tests boot a container: only scripts/test-package.sh (make test-package) runs them.

Plain ``make test`` does not collect them (they need root, systemd-nspawn, a cached Debian root
and built packages, which the script prepares).
"""

import os

if not os.environ.get("ATTGW_PACKAGE_TEST"):
    collect_ignore_glob = ["test_*.py"]
