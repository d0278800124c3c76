#!/usr/bin/env python
"""The one entry point: ``python run_pipeline.py SUBCOMMAND [flags] [Beam flags]``.

The same as the installed ``yt8m`` command and ``python -m yt8m``; the
dispatcher is ``yt8m.cli``.
"""
import sys

from yt8m.cli import main

if __name__ == "__main__":
    sys.exit(main())
