"""``python -m metalight.data describe <config.yaml>`` (see ``metalight.data.describe``)."""

import logging
import sys

from metalight.data.describe import main

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
sys.exit(main())
