"""``python -m services.generator``: see services/generator/cli.py."""

import sys

from services.generator.cli import main

sys.exit(main())
