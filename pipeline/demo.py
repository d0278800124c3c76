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
import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

# Class name -> (entity kg_id, display name, family entity). Families give
# videos a second label, as YouTube-8M videos have 1.8 labels on average.
CLASSES = {
    "red_circle": ("/m/demo_red_circle", "Red circle", "shape"),
    "green_square": ("/m/demo_green_square", "Green square", "shape"),
    "blue_triangle": ("/m/demo_blue_triangle", "Blue triangle", "shape"),
    "yellow_ring": ("/m/demo_yellow_ring", "Yellow ring", "shape"),
    "white_cross": ("/m/demo_white_cross", "White cross", "shape"),
    "stripes": ("/m/demo_stripes", "Stripes", "texture"),
    "checker": ("/m/demo_checker", "Checkerboard", "texture"),
    "diagonal": ("/m/demo_diagonal", "Diagonal lines", "texture"),
    "rings": ("/m/demo_rings", "Concentric rings", "texture"),
    "hstripes": ("/m/demo_hstripes", "Horizontal stripes", "texture"),
}
FAMILIES = {"shape": ("/m/demo_shape", "Shape"), "texture": ("/m/demo_texture", "Texture")}
# An entity raters call non-visual (mean score 4.3 > 2.5): its videos are excluded.
NON_VISUAL = ("/m/demo_podcast", "Podcast episode")

# Selection flags that suit the sample corpus (its videos are seconds long
# and its entities have a handful of videos, not the paper's 120-500 s / 200).
DEMO_VOCAB_FLAGS = ["--min_duration_s", "1", "--max_duration_s", "500",
                    "--min_views", "1000", "--min_videos_per_entity", "2"]


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
    from yt8m.vocab import rules
    from yt8m.vocab.config import VocabConfig
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


def make_corpus(folder: str, n_videos: int = 48, duration_s: float = 6.0,
                width: int = 160, height: int = 120, fps: float = 10.0,
                n_broken: int = 2, n_excluded: int = 3, seed: int = 0,
                classes: Optional[Sequence[str]] = None) -> Corpus:
    """Write a sample corpus into ``folder``; returns its paths and expected outcome.

    ``n_videos`` good videos cycle through ``classes``; ``n_broken`` rows point
    at a file of random bytes and a missing file; ``n_excluded`` rows break a
    rule (too few views, a non-visual entity, too short).
    """
    from yt8m.extractor import synth
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
    rows = []
    for k, vid in enumerate(_pick_ids(n_videos, seed)):
        cls = classes[k % len(classes)]
        path = os.path.join(vids, f"{vid}.mp4")
        if not os.path.exists(path):
            synth.write_video(path, synth.make_content(cls), width=width, height=height,
                              fps=fps, duration_s=duration_s)
        kg, _, fam = CLASSES[cls]
        rows.append((vid, path, 5000 + 37 * k, duration_s, f"{kg};{FAMILIES[fam][0]}"))
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
    used = {CLASSES[c][0]: (CLASSES[c][1], CLASSES[c][2]) for c in classes}
    with open(corpus.entities, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        for kg, (name, fam) in sorted(used.items()):
            w.writerow([kg, name, "Visual Object", "Arts & Entertainment",
                        f"synthetic {fam}: {name.lower()}", ""])
        for kg, name in FAMILIES.values():
            w.writerow([kg, name, "Visual Object", "Arts & Entertainment",
                        f"synthetic family {name.lower()}", ""])
        w.writerow([NON_VISUAL[0], NON_VISUAL[1], "Audio Work", "Arts & Entertainment",
                    "sound only", ""])
    with open(corpus.ratings, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "rater_id", "score"])
        for kg in sorted(used) + [v[0] for v in FAMILIES.values()]:
            for r, s in enumerate((1, 2, 1)):
                w.writerow([kg, f"r{r}", s])
        for r, s in enumerate((4, 5, 4)):
            w.writerow([NON_VISUAL[0], f"r{r}", s])
    return corpus


def _imagenet_cached() -> bool:
    from yt8m.extractor import weights
    try:
        return os.path.exists(weights._imagenet_cache_path())
    except Exception:  # noqa: BLE001 - a missing helper means "not known to be cached"
        return False


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
    from yt8m.pipeline.cli import build_main
    argv_build = ["--videos", corpus.manifest, "--entities", corpus.entities,
                  "--ratings", corpus.ratings, "--output_dir", dataset,
                  "--weights", weights, "--train", ns.model, *DEMO_VOCAB_FLAGS, *beam_args]
    print(f"demo: building {dataset} with weights {weights!r} ...", file=sys.stderr)
    rc = build_main(argv_build)
    if rc == 0:
        print(f"demo: done. The dataset is in {dataset} (see docs/pipeline.md for the "
              f"layout).", file=sys.stderr)
    return rc
