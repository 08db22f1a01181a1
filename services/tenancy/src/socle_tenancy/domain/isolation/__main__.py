"""``python -m socle_tenancy.domain.isolation``: the same as ``socle-isolation-report``."""

import sys

from socle_tenancy.domain.isolation.cli import main

sys.exit(main())
