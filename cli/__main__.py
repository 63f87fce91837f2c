"""`python -m cli ...` is `hindsight ...`."""

import sys

from cli.main import main

sys.exit(main())
