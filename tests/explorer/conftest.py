"""Fixtures of the explorer's tests.

- ``fake_build``: the explorer's inputs written directly (fast; no Beam).
- ``demo_build``: a real build of the demo's sample corpus (``pipeline.demo``),
  random weights, with a trained logistic baseline and thumbnails; made once
  per session (about a minute) for the loop and browser tests.
- ``browser``: headless Chromium under Selenium; skips when Debian's
  chromium and chromium-driver are missing, unless YT8M_REQUIRE_BROWSER=1
  (set by .ci/run), where it fails instead.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from tests.explorer.helpers import browser_paths, make_driver, write_fake_build


@pytest.fixture
def fake_build(tmp_path):
    return write_fake_build(tmp_path / "out")


@pytest.fixture(scope="module")
def fake_build_module(tmp_path_factory):
    return write_fake_build(tmp_path_factory.mktemp("fake") / "out")


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    from yt8m.pipeline.cli import build_main
    from yt8m.pipeline.demo import DEMO_VOCAB_FLAGS, make_corpus
    from yt8m.pipeline.thumbnails import backfill
    root = tmp_path_factory.mktemp("demo")
    # 20 one-second videos (one frame each; 2 in the test split): the build's fixed costs
    # (Beam, TensorFlow, the network) dominate, so fewer frames barely matter.
    corpus = make_corpus(str(root / "corpus"), n_videos=20, duration_s=1.0, width=64,
                         height=48, fps=5.0)
    out = root / "dataset"
    rc = build_main(["--videos", corpus.manifest, "--entities", corpus.entities,
                     "--ratings", corpus.ratings, "--output_dir", str(out),
                     "--weights", "random", "--batch_size", "8", "--no_progress",
                     "--train", "logistic", *DEMO_VOCAB_FLAGS])
    assert rc == 0
    # The build keeps thumbnails while it decodes (--thumbnails, default 4):
    # backfill, which is for older builds, finds every good video's already there.
    counts = backfill(str(out))
    assert counts["present"] == len(corpus.good) and counts["written"] == 0, counts
    return SimpleNamespace(out=out, corpus=corpus, run=out / "train_logistic")


@pytest.fixture(scope="module")
def browser():
    paths, why = browser_paths()
    if paths is None:
        if os.environ.get("YT8M_REQUIRE_BROWSER") == "1":
            pytest.fail(f"YT8M_REQUIRE_BROWSER=1 but the browser tests cannot run: {why}")
        pytest.skip(f"browser tests skipped: {why}")
    drv = make_driver(*paths)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()
