"""``build`` and ``resplit``: flags, and the exit codes of the two subcommands.

``python run_pipeline.py build --videos M --entities E [--ratings R] --output_dir OUT
[vocab flags] [--weights W] [--batch_size N] [--quantizer lloyd|uniform] [--train MODEL]
[--decode_timeout_s S] [Beam flags]``

``python run_pipeline.py resplit --from OUT --output_dir OUT2 [--split ...] [--seed ...]
[vocab flags] [Beam flags]``: the vocab flags default to the source build's.

Flags these parsers do not know go to Beam's PipelineOptions (``--runner``,
``--direct_num_workers``, Dataflow's flags), as in Beam's own examples.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOTHING_WRITTEN = 4


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
    from yt8m.vocab.config import VocabConfig
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
    _common_flags(p)
    VocabConfig.add_arguments(p)
    return p


def resplit_parser(defaults: Optional[dict] = None) -> argparse.ArgumentParser:
    from yt8m.vocab.config import VocabConfig
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
    from yt8m.pipeline.build import BuildConfig
    from yt8m.vocab.config import VocabConfig
    ns, beam_args = build_parser().parse_known_args(list(argv))
    vocab = VocabConfig.from_args(ns)
    if ns.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {ns.batch_size}")
    cfg = BuildConfig(videos=ns.videos, entities=ns.entities, ratings=ns.ratings,
                      output_dir=ns.output_dir, vocab=vocab, weights=ns.weights,
                      batch_size=ns.batch_size, quantizer=ns.quantizer or "lloyd",
                      decode_timeout_s=ns.decode_timeout_s, num_shards=ns.num_shards,
                      train_model=ns.train, progress=not ns.no_progress,
                      beam_args=list(beam_args))
    return cfg, beam_args


def parse_resplit_args(argv: Sequence[str]):
    """(BuildConfig, beam_args) for ``resplit``; the source build's flags are the defaults."""
    from yt8m.pipeline.build import resplit_config
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--from", dest="source")
    known, _ = pre.parse_known_args(list(argv))
    source_info = _source_info(known.source) if known.source else {}
    flags = source_info.get("flags", {})
    defaults = dict(flags.get("vocab") or {})
    if defaults.get("split") is not None:
        defaults["split"] = ",".join(str(x) for x in defaults["split"])
    for k in ("type_whitelist", "type_blacklist"):
        if defaults.get(k) is not None:
            defaults[k] = ",".join(defaults[k])
    defaults["quantizer"] = flags.get("quantizer")
    ns, beam_args = resplit_parser(defaults).parse_known_args(list(argv))
    from yt8m.vocab.config import VocabConfig
    cfg = resplit_config(ns.source, source_info, ns.output_dir, VocabConfig.from_args(ns),
                         quantizer=ns.quantizer or "lloyd", num_shards=ns.num_shards,
                         train_model=ns.train, progress=not ns.no_progress,
                         beam_args=list(beam_args))
    return cfg, beam_args


def _source_info(source: str) -> dict:
    from yt8m.pipeline import io as pio
    path = pio.join(source, "dataset_info.json")
    try:
        return json.loads(pio.read_text(path))
    except FileNotFoundError:
        raise ValueError(f"--from {source!r} holds no finished build ({path} is missing): "
                         f"pass the --output_dir of a build that completed") from None
    except Exception as e:  # noqa: BLE001 - FileSystems raises its own IOError kinds
        if not _exists(path):
            raise ValueError(f"--from {source!r} holds no finished build ({path} is missing): "
                             f"pass the --output_dir of a build that completed") from None
        raise ValueError(f"--from {source!r}: cannot read {path}: {e}") from e


def _exists(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.exists(path)


def _finish(run, argv: Sequence[str], parse) -> int:
    from yt8m.pipeline.build import BuildError
    from yt8m.pipeline.progress import summary_text
    try:
        cfg, _ = parse(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        outcome = run(cfg)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary_text(outcome.info), file=sys.stderr)
    if outcome.train_metrics is not None:
        print("baseline (validate): " + json.dumps(outcome.train_metrics, sort_keys=True),
              file=sys.stderr)
    return EXIT_OK


def build_main(argv: Sequence[str]) -> int:
    """``run_pipeline.py build``: 0 when the dataset was written (failed videos included)."""
    from yt8m.pipeline.build import run_build
    return _finish(run_build, argv, parse_build_args)


def resplit_main(argv: Sequence[str]) -> int:
    """``run_pipeline.py resplit``: a new selection and splits from a build's cache."""
    from yt8m.pipeline.build import run_build
    return _finish(run_build, argv, parse_resplit_args)


def run(argv: Optional[Sequence[str]] = None, test_pipeline=None):
    """``build`` from flags; returns the PipelineResult (Beam examples' convention)."""
    from yt8m.pipeline.build import run_build
    cfg, _ = parse_build_args(sys.argv[1:] if argv is None else argv)
    return run_build(cfg, test_pipeline=test_pipeline).result
