"""``python -m benchmarks [--quick] [--gpu]``: every performance figure, side by side."""
import sys

from benchmarks.harness import main

sys.exit(main())
