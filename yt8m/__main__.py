"""``python -m yt8m SUBCOMMAND ...``: the same as ``python run_pipeline.py``."""
import sys

from yt8m.cli import main

sys.exit(main())
