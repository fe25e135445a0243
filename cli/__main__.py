"""`python -m cli`: the `scim-bridge` command without the installed script."""

import sys

from cli.main import main

sys.exit(main())
