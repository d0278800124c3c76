"""yt8m-builder: build YouTube-8M-style datasets from raw video.

The project installs under this one name so that its stages never shadow, or
are shadowed by, other distributions' top-level packages (Python 3.14's
standard library adds a ``compression`` package, PyPI has ``pipeline`` and
``trainer``):

    yt8m.vocab  yt8m.extractor  yt8m.compression  yt8m.pipeline  yt8m.trainer  yt8m.explorer

In the repository each stage keeps its own top-level folder (``vocab/``,
``extractor/``, ...); ``pyproject.toml`` maps ``yt8m.<stage>`` onto it for
installs (``[tool.setuptools] package-dir``). In a source checkout the same
mapping is made here: this package's search path also covers the checkout's
root, so ``python run_pipeline.py`` and ``pytest`` run the checkout's code
(not whatever copy is installed). Installed from a wheel there is no such
root beside this folder and nothing is added.

This folder itself holds what every stage shares: the CLI dispatcher
(``yt8m.cli``), the typed records that cross stage boundaries
(``yt8m.records``), the Beam counter names (``yt8m.counters``) and the one
filesystem helper (``yt8m.fs``). docs/architecture.md maps the house.
"""
from __future__ import annotations

import os as _os

STAGES = ("vocab", "extractor", "compression", "pipeline", "trainer", "explorer")


def _checkout_root() -> str | None:
    """The source checkout this folder sits in, or None (an installed wheel)."""
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    marker = _os.path.join(root, "pyproject.toml")
    if not _os.path.isfile(marker):
        return None
    try:
        with open(marker, encoding="utf-8") as fh:
            if 'name = "yt8m-builder"' not in fh.read():
                return None
    except OSError:
        return None
    return root


_ROOT = _checkout_root()
if _ROOT is not None and _ROOT not in __path__:  # noqa: F821 - set by the import system
    __path__.append(_ROOT)  # noqa: F821
