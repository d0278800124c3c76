#!/usr/bin/env python
"""The one entry point: ``python run_pipeline.py SUBCOMMAND [flags] [Beam flags]``.

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
    "build": ("pipeline.cli:build_main",
              "build a YouTube-8M-style dataset (select, extract, compress, write TFRecords)"),
    "vocab": ("vocab.cli:main",
              "build the vocabulary, select videos and write reproducible splits"),
    "extract": ("extractor.cli:main",
                "extract Inception-v3 frame features for new videos"),
    "resplit": ("pipeline.cli:resplit_main",
                "re-select and re-split a built dataset from its feature cache (no decoding)"),
    "train": ("trainer.cli:train_main",
              "train a baseline model (logistic, hinge, moe, frame_logistic, dbof, lstm)"),
    "evaluate": ("trainer.cli:evaluate_main",
                 "evaluate a trained model on a split (mAP, Hit@k, PERR, GAP)"),
    "predict": ("trainer.cli:predict_main",
                "predict the top entities for videos from extracted features"),
    "demo": ("pipeline.demo:main",
             "generate a small sample corpus, build a dataset from it and train a baseline"),
}

NOT_IMPLEMENTED_EXIT = 3


class NotImplementedYet(Exception):
    """The subcommand's stage has not landed in this version."""


def _resolve(command: str) -> Callable[[Sequence[str]], int]:
    target, _ = SUBCOMMANDS[command]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only the subcommand's own module missing means "not implemented";
        # a missing third-party dependency must surface as itself.
        if e.name == module_name:
            raise NotImplementedYet(command) from e
        raise
    func = getattr(module, func_name, None)
    if func is None:
        raise NotImplementedYet(command)
    return func


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
    try:
        func = _resolve(ns.command)
    except NotImplementedYet:
        print(f"run_pipeline.py {ns.command}: not implemented yet in this version "
              f"(its stage has not landed).", file=sys.stderr)
        return NOT_IMPLEMENTED_EXIT
    result = func(argv[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
