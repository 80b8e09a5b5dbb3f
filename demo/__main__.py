"""`python -m demo` (`make demo`): see demo/steps.py."""

import sys

from demo.steps import main

sys.exit(main())
