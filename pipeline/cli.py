"""``build`` and ``resplit``: their flags, parsed into a ``BuildConfig`` for the launcher.

``python run_pipeline.py build --videos M --entities E [--ratings R] --output_dir OUT
[vocab flags] [--weights W] [--batch_size N] [--quantizer lloyd|uniform] [--train MODEL]
[--decode_timeout_s S] [--precision P] [--decode_device cpu|cuda] [--thumbnails N]
[Beam flags]``

``python run_pipeline.py resplit --from OUT --output_dir OUT2 [--split ...] [--seed ...]
[vocab flags] [Beam flags]``: the vocab flags default to the source build's.

Flags these parsers do not know go to Beam's PipelineOptions (``--runner``,
``--direct_num_workers``, Dataflow's flags), as in Beam's own examples. This
module only parses; ``pipeline.launch`` runs, publishes and reports. Exit
codes: 0 written, 2 bad inputs or flags, 4 no video could be written.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yt8m.pipeline.config import (BUILD_THUMBNAILS, EXIT_BAD_INPUT, BuildConfig,
                                  add_decode_flags, check_thumbnails, read_source_info, resplit_config,
                                  source_vocab_defaults)
from yt8m.vocab.config import VocabConfig


def _launcher():
    # The launcher imports the pipeline's stages and, with them, TensorFlow:
    # only after the flags are parsed, so that --help and flag errors are instant.
    from yt8m.pipeline import launch
    return launch


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output_dir", required=True,
                        help="where the dataset goes (local folder or gs:// URI)")
    parser.add_argument("--quantizer", choices=("lloyd", "uniform"), default=None,
                        help="8-bit codebook: lloyd (Lloyd-Max fit on the whitened train "
                             "frames; default) or uniform (the released [-2, 2] convention)")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="TFRecord shards per split and kind (default 0: the runner "
                             "decides)")
    parser.add_argument("--train", metavar="MODEL", default=None,
                        help="after writing, train this baseline (trainer models: logistic, "
                             "moe, dbof, ...) into OUT/train_MODEL")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress line (local runs show one on stderr)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_pipeline.py build",
        description="Build a YouTube-8M-style dataset: select videos, extract Inception-v3 "
                    "frame features (cached), fit PCA + 8-bit quantization on the train "
                    "split, write TFRecords. Unknown flags go to Beam.")
    p.add_argument("--videos", required=True, help="videos manifest (CSV or JSONL)")
    p.add_argument("--entities", required=True, help="entity catalog CSV")
    p.add_argument("--ratings", default=None, help="rater scores CSV (optional)")
    p.add_argument("--weights", default="imagenet",
                   help="feature network weights: imagenet, a .h5/.keras file, a hub handle "
                        "or SavedModel dir, yt8m-graph:PATH, or random[:SEED] (tests only)")
    p.add_argument("--batch_size", type=int, default=32, help="frames per model call")
    p.add_argument("--decode_timeout_s", type=float, default=None,
                   help="stop decoding a video after this many seconds and report it "
                        "(default: no limit)")
    add_decode_flags(p, BUILD_THUMBNAILS)
    _common_flags(p)
    VocabConfig.add_arguments(p)
    return p


def resplit_parser(defaults: Optional[dict] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_pipeline.py resplit",
        description="Re-select and re-split a built dataset from its feature cache: new "
                    "vocabulary and splits, PCA and quantizer refit on the new train split, "
                    "no video decoded. Selection flags default to the source build's.")
    p.add_argument("--from", dest="source", required=True,
                   help="the output_dir of a finished build (its cache and inputs are used)")
    _common_flags(p)
    VocabConfig.add_arguments(p)
    if defaults:
        p.set_defaults(**defaults)
    return p


def parse_build_args(argv: Sequence[str]):
    """(BuildConfig, beam_args) from ``build`` flags; ValueError for invalid values."""
    ns, beam_args = build_parser().parse_known_args(list(argv))
    vocab = VocabConfig.from_args(ns)
    if ns.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {ns.batch_size}")
    check_thumbnails(ns.thumbnails)
    cfg = BuildConfig(videos=ns.videos, entities=ns.entities, ratings=ns.ratings,
                      output_dir=ns.output_dir, vocab=vocab, weights=ns.weights,
                      batch_size=ns.batch_size, quantizer=ns.quantizer or "lloyd",
                      decode_timeout_s=ns.decode_timeout_s, num_shards=ns.num_shards,
                      train_model=ns.train, progress=not ns.no_progress,
                      beam_args=list(beam_args), thumbnails=ns.thumbnails,
                      decode_device=ns.decode_device, precision=ns.precision)
    return cfg, beam_args


def parse_resplit_args(argv: Sequence[str]):
    """(BuildConfig, beam_args) for ``resplit``; the source build's flags are the defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--from", dest="source")
    known, _ = pre.parse_known_args(list(argv))
    source_info = read_source_info(known.source) if known.source else {}
    ns, beam_args = resplit_parser(source_vocab_defaults(source_info)).parse_known_args(
        list(argv))
    cfg = resplit_config(ns.source, source_info, ns.output_dir, VocabConfig.from_args(ns),
                         quantizer=ns.quantizer or "lloyd", num_shards=ns.num_shards,
                         train_model=ns.train, progress=not ns.no_progress,
                         beam_args=list(beam_args))
    return cfg, beam_args


def _main(argv: Sequence[str], parse) -> int:
    try:
        cfg, _ = parse(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _launcher().build_and_report(cfg)


def build_main(argv: Sequence[str]) -> int:
    """``run_pipeline.py build``: 0 when the dataset was written (failed videos included)."""
    return _main(argv, parse_build_args)


def resplit_main(argv: Sequence[str]) -> int:
    """``run_pipeline.py resplit``: a new selection and splits from a build's cache."""
    return _main(argv, parse_resplit_args)


def run(argv: Optional[Sequence[str]] = None, test_pipeline=None):
    """``build`` from flags; returns the PipelineResult (Beam examples' convention)."""
    cfg, _ = parse_build_args(sys.argv[1:] if argv is None else argv)
    return _launcher().run_build(cfg, test_pipeline=test_pipeline).result
