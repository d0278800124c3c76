"""The dispatcher behind ``python run_pipeline.py``, ``python -m yt8m`` and ``yt8m``.

This module only parses the subcommand name and dispatches; every stage lives
in its own package and is importable as a library. Each subcommand's module
exposes a ``main(argv) -> int`` function that parses its own flags with
``parse_known_args`` and hands the rest to Beam's ``PipelineOptions``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable, Sequence

# name -> ("module:function", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "build": ("yt8m.pipeline.cli:build_main",
              "build a YouTube-8M-style dataset (select, extract, compress, write TFRecords)"),
    "vocab": ("yt8m.vocab.cli:main",
              "build the vocabulary, select videos and write reproducible splits"),
    "extract": ("yt8m.extractor.cli:main",
                "extract Inception-v3 frame features for new videos"),
    "resplit": ("yt8m.pipeline.cli:resplit_main",
                "re-select and re-split a built dataset from its feature cache (no decoding)"),
    "train": ("yt8m.trainer.cli:train_main",
              "train a baseline model (logistic, hinge, moe, frame_logistic, dbof, lstm)"),
    "evaluate": ("yt8m.trainer.cli:evaluate_main",
                 "evaluate a trained model on a split (mAP, Hit@k, PERR, GAP)"),
    "predict": ("yt8m.trainer.cli:predict_main",
                "predict the top entities for videos from extracted features"),
    "demo": ("yt8m.pipeline.demo:main",
             "generate a small sample corpus, build a dataset from it and train a baseline"),
    "serve": ("yt8m.explorer.cli:serve_main",
              "the dataset explorer and rating server (verticals, entities, videos, raters)"),
    "raters": ("yt8m.explorer.cli:raters_main",
               "add, list or revoke the explorer's raters (prints sign-in links)"),
    "ratings": ("yt8m.explorer.cli:ratings_main",
                "export the explorer's ratings (ratings.csv, human labels) or report on them"),
}


def _resolve(command: str) -> Callable[[Sequence[str]], int]:
    """The subcommand's ``main``; its module is imported only when it runs (start-up
    stays quick, and ``--help`` needs no TensorFlow)."""
    module_name, func_name = SUBCOMMANDS[command][0].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _drop_message_prefix(prefix: str) -> logging.Filter:
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(prefix)
    return _Drop()


def build_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py",
        description="Build YouTube-8M-style video classification datasets from raw video.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"subcommands:\n{lines}\n\n"
               "Run 'run_pipeline.py SUBCOMMAND --help' for a subcommand's flags. Flags a\n"
               "subcommand does not know are passed to Beam's PipelineOptions\n"
               "(--runner, --direct_num_workers, Dataflow's flags, ...).",
    )
    parser.add_argument("command", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND",
                        help="one of: " + ", ".join(SUBCOMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # TensorFlow's C++ start-up chatter (no CUDA device found, ...) drowns the
    # progress and the summary on CPU machines; real errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Beam warns at import that the GCP client libraries are missing; that is
    # only relevant to BigQuery, which the tool does not use.
    logging.getLogger().addFilter(_drop_message_prefix("apitools not found"))
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    ns = parser.parse_args(argv[:1])
    result = _resolve(ns.command)(argv[1:])
    return int(result or 0)
