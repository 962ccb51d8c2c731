"""`python -m lsp_server` is the same as the `gearshift` command."""

import sys

from lsp_server.cli import main

sys.exit(main())
