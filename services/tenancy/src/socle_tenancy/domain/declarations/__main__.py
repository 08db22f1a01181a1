"""``python -m socle_tenancy.domain.declarations``: the ``socle-tenants`` command."""

import sys

from socle_tenancy.domain.declarations.cli import main

sys.exit(main())
