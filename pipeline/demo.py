"""``demo``: a sample corpus, a build on it and a baseline, in minutes on a laptop.

``python run_pipeline.py demo --output_dir OUT`` writes OUT/corpus/ (short
synthetic videos of visually distinct classes from ``extractor.synth``, an
entity catalog, rater scores and a manifest that also holds a couple of broken
videos and rows the selection rules exclude), builds OUT/dataset/ from it with
the local runner, trains a baseline on it and prints the metrics.

Weights: ``imagenet`` when Keras has them cached (~/.keras/models), else
``random`` with a notice (no network access is assumed). Budget: about 1 frame
per video second; random Inception-v3 runs ~9 frames/s on 2 CPU cores, so the
default corpus (~48 videos x 6 s) extracts ~290 frames.

``make_corpus`` is public: tests and benchmarks build their corpora with it.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

from yt8m.extractor import synth
from yt8m.extractor.weights import imagenet_cache_path
from yt8m.pipeline.config import BuildConfig
from yt8m.vocab import rules
from yt8m.vocab.config import VocabConfig

# Class name -> (entity kg_id, display name, family, verticals, scores of raters r0-r2).
# The sample corpus is a miniature of the dataset (paper section 3.4): entities
# in several of the 24 top-level verticals, Zipf-like videos per entity (the
# first class is the most popular, see ``zipf_counts``), and rater scores whose
# means fall in each specificity bucket of Figure 4b (coarse <= 1.5 < medium
# <= 2.0 < fine <= 2.5 with the default --max_mean_rating). Families give most
# videos a second label (YouTube-8M videos have 1.8 labels on average).
CLASSES = {
    "red_circle": ("/m/demo_red_circle", "Red circle", "shape", "Sports", (1, 1, 2)),
    "green_square": ("/m/demo_green_square", "Green square", "shape", "Games", (1, 2, 2)),
    "blue_triangle": ("/m/demo_blue_triangle", "Blue triangle", "shape", "Travel", (2, 3, 2)),
    "yellow_ring": ("/m/demo_yellow_ring", "Yellow ring", "shape", "Shopping", (1, 1, 1)),
    "white_cross": ("/m/demo_white_cross", "White cross", "shape", "Health", (2, 2, 2)),
    "stripes": ("/m/demo_stripes", "Stripes", "texture", "Beauty & Fitness", (2, 2, 3)),
    "checker": ("/m/demo_checker", "Checkerboard", "texture", "Games;Hobbies & Leisure",
                (1, 2, 1)),
    "diagonal": ("/m/demo_diagonal", "Diagonal lines", "texture", "Arts & Entertainment",
                 (2, 1, 2)),
    "rings": ("/m/demo_rings", "Concentric rings", "texture", "Science", (3, 2, 2)),
    "hstripes": ("/m/demo_hstripes", "Horizontal stripes", "texture", "Home & Garden",
                 (2, 2, 1)),
}
# What each class shows (its entity's description, as a catalog would give it).
DESCRIPTIONS = {
    "red_circle": "A red disc moving over a dark background.",
    "green_square": "A green square moving over a dark background.",
    "blue_triangle": "A blue triangle moving over a light background.",
    "yellow_ring": "A yellow ring moving over a purple background.",
    "white_cross": "A white cross moving over a dark red background.",
    "stripes": "Vertical yellow and dark stripes drifting sideways.",
    "checker": "A black and white checkerboard drifting slowly.",
    "diagonal": "Cyan and dark red diagonal lines.",
    "rings": "Orange and dark green concentric rings.",
    "hstripes": "Horizontal purple and light grey stripes.",
}
WIKI = "https://en.wikipedia.org/wiki/"
WIKI_PAGES = {"red_circle": "Circle", "green_square": "Square", "blue_triangle": "Triangle",
              "yellow_ring": "Annulus_(mathematics)", "white_cross": "Cross",
              "stripes": "Stripe_(pattern)", "checker": "Checkerboard", "diagonal": "Diagonal",
              "rings": "Concentric_objects", "hstripes": "Stripe_(pattern)"}
# family -> (kg_id, name, verticals, scores)
FAMILIES = {"shape": ("/m/demo_shape", "Shape", "Science;Reference", (1, 1, 1)),
            "texture": ("/m/demo_texture", "Texture", "Arts & Entertainment", (1, 1, 2))}
# The share of videos that also carry their family's label (the rest have one label).
FAMILY_SHARE = 0.8
# An entity raters call non-visual (mean score 4.3 > 2.5): its videos are excluded.
NON_VISUAL = ("/m/demo_podcast", "Podcast episode")
# A catalog entity that only experts could identify (mean 3.0): excluded by rating.
EXPERT_ONLY = ("/m/demo_moire", "Moire pattern", "Science", (3, 3, 3))

# Selection rules that suit the sample corpus (its videos are seconds long
# and its entities have a handful of videos, not the paper's 120-500 s / 200).
DEMO_VOCAB = {"min_duration_s": 1.0, "max_duration_s": 500.0, "min_views": 1000,
              "min_videos_per_entity": 2}
# The same rules as flags of build, resplit and vocab.
DEMO_VOCAB_FLAGS = [arg for key, value in DEMO_VOCAB.items() for arg in (f"--{key}", str(value))]


@dataclass
class Corpus:
    folder: str
    manifest: str
    entities: str
    ratings: str
    good: list = field(default_factory=list)       # video ids expected to be written
    broken: list = field(default_factory=list)     # ids expected in failures.jsonl
    excluded: list = field(default_factory=list)   # ids the rules exclude
    frames_per_video: int = 0


def _pick_ids(n: int, seed: int = 0, prefix: str = "vid") -> list[str]:
    """``n`` video ids whose hash splits cover train, validate and test (70/20/10).

    Fewer than 3 videos all go to train (the PCA needs train frames).
    """
    cfg = VocabConfig(seed=seed)
    if n < 3:
        want = {"train": n, "validate": 0, "test": 0}
    else:
        want = {"test": max(1, round(n * 0.1)), "validate": max(1, round(n * 0.2))}
        want["train"] = max(1, n - want["test"] - want["validate"])
    got: dict = {k: [] for k in want}
    i = 0
    while any(len(got[k]) < want[k] for k in want):
        vid = f"{prefix}{i:04d}"
        s = rules.split_of(vid, cfg)
        if len(got[s]) < want[s]:
            got[s].append(vid)
        i += 1
    return sorted(got["train"] + got["validate"] + got["test"])


def zipf_counts(n: int, k: int, exponent: float = 1.0, floor: int = 2) -> list[int]:
    """Videos per class for ``n`` videos over at most ``k`` classes, Zipf-like by rank.

    Every class used gets at least ``floor`` videos (so that it passes the demo's
    ``--min_videos_per_entity 2`` and no good video is left without a label);
    the rest is shared in proportion to ``1 / rank ** exponent`` (largest
    remainders, ties to the more popular class). With fewer than ``floor * k``
    videos only the ``n // floor`` most popular classes are used.
    """
    if n < 1 or k < 1:
        raise ValueError(f"zipf_counts needs n >= 1 and k >= 1, got n={n}, k={k}")
    used = max(1, min(k, n // floor))
    base = min(floor, n // used)
    rest = n - base * used
    weights = [1.0 / (r + 1) ** exponent for r in range(used)]
    shares = [rest * w / sum(weights) for w in weights]
    counts = [base + int(x) for x in shares]
    order = sorted(range(used), key=lambda r: (-(shares[r] - int(shares[r])), r))
    for r in order[:n - sum(counts)]:
        counts[r] += 1
    return counts


def make_corpus(folder: str, n_videos: int = 48, duration_s: float = 6.0,
                width: int = 160, height: int = 120, fps: float = 10.0,
                n_broken: int = 2, n_excluded: int = 3, seed: int = 0,
                classes: Optional[Sequence[str]] = None) -> Corpus:
    """Write a sample corpus into ``folder``; returns its paths and expected outcome.

    ``n_videos`` good videos are shared among ``classes`` Zipf-like
    (``zipf_counts``; the first class is the most popular), assigned to the
    videos by a ``seed``-ed shuffle so that every class meets every split;
    about ``FAMILY_SHARE`` of them also carry their family's label.
    ``n_broken`` rows point at a file of random bytes and a missing file;
    ``n_excluded`` rows break a rule (too few views, a non-visual entity, too
    short). The catalog spreads the entities over several verticals and the
    ratings put them in all three specificity buckets; one more catalog
    entity (``EXPERT_ONLY``, no videos) fails the rating rule.
    """
    if n_videos < 1:
        raise ValueError(f"make_corpus needs at least 1 good video, got {n_videos}")
    classes = list(classes or CLASSES)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown demo classes {unknown}; choose from {sorted(CLASSES)}")
    vids = os.path.join(folder, "videos")
    os.makedirs(vids, exist_ok=True)
    corpus = Corpus(folder=folder, manifest=os.path.join(folder, "manifest.csv"),
                    entities=os.path.join(folder, "entities.csv"),
                    ratings=os.path.join(folder, "ratings.csv"))
    counts = zipf_counts(n_videos, len(classes))
    assigned = [cls for cls, c in zip(classes, counts) for _ in range(c)]
    random.Random(seed).shuffle(assigned)
    ids = _pick_ids(n_videos, seed)
    # Exactly FAMILY_SHARE of the videos (those with the smallest hash) get a second label.
    with_family = set(sorted(ids, key=lambda v: rules.h("family", v, seed))
                      [:round(FAMILY_SHARE * n_videos)])
    rows = []
    for k, (vid, cls) in enumerate(zip(ids, assigned)):
        path = os.path.join(vids, f"{vid}.mp4")
        if not os.path.exists(path):
            synth.write_video(path, synth.make_content(cls), width=width, height=height,
                              fps=fps, duration_s=duration_s)
        kg, fam = CLASSES[cls][0], CLASSES[cls][2]
        labels = [kg]
        if vid in with_family:
            labels.append(FAMILIES[fam][0])
        rows.append((vid, path, 5000 + 37 * k, duration_s, ";".join(labels)))
        corpus.good.append(vid)
    corpus.frames_per_video = int(duration_s)  # 1 frame/s for t < duration
    first_kg = CLASSES[classes[0]][0]
    broken_specs = [("broken_bytes", "random bytes named .mp4"),
                    ("broken_missing", "a file that does not exist")][:n_broken]
    for i, (name, _) in enumerate(broken_specs):
        path = os.path.join(vids, f"{name}.mp4")
        if name == "broken_bytes":
            with open(path, "wb") as fh:
                fh.write(os.urandom(4096))
        rows.append((name, path, 9000 + i, duration_s, first_kg))
        corpus.broken.append(name)
    excluded_specs = [("excl_views", 10, duration_s, first_kg),
                      ("excl_nonvisual", 5000, duration_s, NON_VISUAL[0]),
                      ("excl_short", 5000, 0.5, first_kg)][:n_excluded]
    for name, views, dur, ents in excluded_specs:
        rows.append((name, os.path.join(vids, f"{name}.mp4"), views, dur, ents))
        corpus.excluded.append(name)
    with open(corpus.manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "uri", "views", "duration_s", "entities"])
        w.writerows(rows)
    entities, scores = [], {}
    for cls in classes:
        kg, name, _, verticals, rated = CLASSES[cls]
        entities.append((kg, name, "Visual Object", verticals, DESCRIPTIONS[cls],
                         WIKI + WIKI_PAGES[cls]))
        scores[kg] = rated
    for fam, (kg, name, verticals, rated) in FAMILIES.items():
        entities.append((kg, name, "Visual Object", verticals,
                         f"Any {fam}: the family of the demo's {fam} classes.",
                         WIKI + ("Shape" if fam == "shape" else "Texture_(visual_arts)")))
        scores[kg] = rated
    entities.append((NON_VISUAL[0], NON_VISUAL[1], "Audio Work",
                     "Arts & Entertainment;Internet & Telecom",
                     "An episode of an audio programme: sound only.", WIKI + "Podcast"))
    scores[NON_VISUAL[0]] = (4, 5, 4)
    kg, name, verticals, rated = EXPERT_ONLY
    entities.append((kg, name, "Visual Object", verticals,
                     "Interference fringes of two overlaid fine patterns.",
                     WIKI + "Moir%C3%A9_pattern"))
    scores[kg] = rated
    with open(corpus.entities, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        w.writerows(sorted(entities))
    with open(corpus.ratings, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "rater_id", "score"])
        for kg in sorted(scores):
            for r, s in enumerate(scores[kg]):
                w.writerow([kg, f"r{r}", s])
    return corpus


def _imagenet_cached() -> bool:
    return os.path.exists(imagenet_cache_path())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py demo",
        description="Generate a sample corpus, build a dataset from it on the local runner "
                    "and train a baseline. Unknown flags go to Beam.")
    parser.add_argument("--output_dir", required=True, help="folder for corpus/ and dataset/")
    parser.add_argument("--videos", type=int, default=48, help="good videos (default 48)")
    parser.add_argument("--duration_s", type=float, default=6.0,
                        help="seconds per video = frames per video (default 6)")
    parser.add_argument("--weights", default=None,
                        help="default: imagenet if cached locally, else random")
    parser.add_argument("--model", default="logistic", help="baseline to train")
    ns, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    weights = ns.weights
    if weights is None:
        if _imagenet_cached():
            weights = "imagenet"
        else:
            weights = "random"
            print("notice: ImageNet weights are not cached in ~/.keras/models and this demo "
                  "does not download them: using RANDOM weights. The pipeline runs end to "
                  "end, but the features (and the baseline's metrics) mean little. For real "
                  "features run once with internet: python -c \"import keras; "
                  "keras.applications.InceptionV3(weights='imagenet')\"", file=sys.stderr)
    corpus_dir = os.path.join(ns.output_dir, "corpus")
    print(f"demo: writing {ns.videos} sample videos to {corpus_dir} ...", file=sys.stderr)
    corpus = make_corpus(corpus_dir, n_videos=ns.videos, duration_s=ns.duration_s)
    dataset = os.path.join(ns.output_dir, "dataset")
    cfg = BuildConfig(videos=corpus.manifest, entities=corpus.entities, ratings=corpus.ratings,
                      output_dir=dataset, vocab=VocabConfig(**DEMO_VOCAB), weights=weights,
                      train_model=ns.model, beam_args=list(beam_args))
    print(f"demo: building {dataset} with weights {weights!r} ...", file=sys.stderr)
    # The launcher imports the pipeline and TensorFlow: only once the corpus is
    # written (make_corpus, which tests import, and --help stay light).
    from yt8m.pipeline.launch import build_and_report
    rc = build_and_report(cfg)
    if rc == 0:
        # The build wrote the thumbnails from its own decode (--thumbnails, default
        # 4): no second decode pass for the explorer.
        print(f"demo: done. The dataset is in {dataset} (see docs/pipeline.md for the "
              f"layout).", file=sys.stderr)
        print(explore_hint(dataset, ns.model), file=sys.stderr)
    return rc


def explore_hint(dataset: str, model: str = "logistic") -> str:
    """How to open the explorer on the demo's build (printed at the end of ``demo``)."""
    predictions = os.path.join(dataset, f"train_{model}", "predictions.csv")
    serve = f"python run_pipeline.py serve --data_dir {dataset}"
    if os.path.exists(predictions):
        serve += f" --predictions {predictions}"
    return ("demo: explore it in a browser (docs/explorer.md):\n"
            f"  {serve}\n"
            "  then open http://127.0.0.1:8080/ ; to rate, make a rater and open the link it "
            "prints:\n"
            f"  python run_pipeline.py raters add admin --admin --data_dir {dataset}")
