"""``python -m socle_tenancy.domain.offboarding TENANT --export-dir DIR [--confirm]``."""

import sys

from socle_tenancy.domain.declarations.cli import main

sys.exit(main(["offboard", *sys.argv[1:]]))
