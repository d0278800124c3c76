"""Shared pytest fixtures (kept small and general; room-specific ones live in the room).

- ``video_factory``: writes synthetic videos under the test's tmp_path
  (``video_factory("a.mp4", codec=..., ...)`` -> ``extractor.synth.SynthVideo``).
- ``remote_fs``: the ``yt8mtest://`` Beam FileSystem of ``tests/media.py`` rooted
  in a fresh folder, its faults cleared after the test.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``from tests.media import ...`` must work however pytest was started
# (``pytest`` does not put the repository root on sys.path, ``python -m pytest`` does).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture
def video_factory(tmp_path):
    from tests.media import write_video

    def make(name: str, content=None, **kwargs):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(path, content, **kwargs)

    return make


@pytest.fixture
def remote_fs(tmp_path):
    from tests.media import FakeRemoteFileSystem

    root = tmp_path / "remote"
    root.mkdir()
    FakeRemoteFileSystem.root = str(root)
    FakeRemoteFileSystem.faults = {}
    yield FakeRemoteFileSystem
    FakeRemoteFileSystem.faults = {}
