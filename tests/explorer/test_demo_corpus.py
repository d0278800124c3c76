"""The demo's sample corpus is a fair miniature of the dataset (paper section 3.4)."""
from __future__ import annotations

import csv
from collections import Counter

import pytest

from yt8m.explorer.verticals import TOP_LEVEL
from yt8m.pipeline import demo
from yt8m.vocab.rules import mean_rating, specificity


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo.make_corpus(str(tmp_path_factory.mktemp("corpus")), n_videos=48, duration_s=1.0,
                            width=32, height=24, fps=2.0)


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_entities_spread_over_the_top_level_verticals(corpus):
    ents = rows(corpus.entities)
    verticals = Counter(v for e in ents for v in e["vertical"].split(";"))
    assert set(verticals) <= set(TOP_LEVEL)
    assert len(verticals) >= 10
    assert all(e["description"] and e["wiki_url"].startswith("https://") for e in ents)


def test_videos_per_entity_are_zipf_like(corpus):
    manifest = rows(corpus.manifest)
    per = Counter(kg for r in manifest if r["video_id"] in corpus.good
                  for kg in r["entities"].split(";") if kg in
                  {c[0] for c in demo.CLASSES.values()})
    ranked = [per[demo.CLASSES[c][0]] for c in demo.CLASSES]
    assert sum(ranked) == 48 and ranked == sorted(ranked, reverse=True)
    assert ranked[0] >= 3 * ranked[-1] and min(ranked) >= 2
    assert demo.zipf_counts(48, 10) == ranked
    labels = [len(r["entities"].split(";")) for r in manifest if r["video_id"] in corpus.good]
    assert sum(labels) / len(labels) == pytest.approx(1.8, abs=0.03)   # as YouTube-8M


def test_ratings_give_every_specificity(corpus):
    scores = {}
    for r in rows(corpus.ratings):
        scores.setdefault(r["kg_id"], []).append(r["score"])
    buckets = Counter()
    for kg, s in scores.items():
        mean = mean_rating(s)
        buckets["not visual" if mean > 2.5 else specificity(mean, 2.5)] += 1
    assert buckets["coarse"] and buckets["medium"] and buckets["fine"]
    assert buckets["not visual"] == 2             # the podcast and the expert-only entity


@pytest.mark.parametrize("n,k", [(1, 10), (3, 10), (8, 2), (20, 10), (48, 10), (500, 10)])
def test_zipf_counts_give_every_used_class_two_videos(n, k):
    counts = demo.zipf_counts(n, k)
    assert sum(counts) == n and counts == sorted(counts, reverse=True)
    assert len(counts) <= k and (n < 2 or min(counts) >= 2)


def test_the_demo_ends_with_how_to_open_the_explorer(tmp_path):
    hint = demo.explore_hint(str(tmp_path / "dataset"))
    assert "run_pipeline.py serve --data_dir" in hint and "raters add" in hint
    assert "http://127.0.0.1:8080/" in hint
