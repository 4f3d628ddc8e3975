"""``python -m bench``: every benchmark, one table, ``bench/results.json`` and a chart."""

import sys

from bench.run import main

sys.exit(main())
