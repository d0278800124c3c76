"""``python -m tests.reliability.launch [fault flags] -- SUBCOMMAND [flags]``: run_pipeline.py
with the faults of ``tests.reliability.faults`` installed (a separate module, so that the
test filesystems are defined once: Beam refuses two filesystems for one scheme)."""
import sys

from tests.reliability.faults import _main

if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
