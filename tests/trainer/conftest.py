"""Fixtures of the trainer's tests: generated datasets, written once per session."""
from __future__ import annotations

import pytest

from tests.trainer import synth


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "OUT"
    info = synth.write_build(str(out))
    return str(out), info


@pytest.fixture(scope="session")
def released_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("released")
    info = synth.write_released(str(d))
    return str(d), info
