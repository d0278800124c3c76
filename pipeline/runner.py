"""Choosing the Beam runner and turning leftover flags into PipelineOptions.

Beam 2.77's ``DirectRunner`` first tries the Prism runner, which downloads a
binary; offline that costs a timeout and a fallback. The project's local
default is therefore the ``FnApiRunner`` chosen explicitly (the same engine the
DirectRunner falls back to). Any ``--runner`` the user passes wins: Dataflow,
Flink, Spark, or ``DirectRunner`` itself.
"""
from __future__ import annotations

from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

LOCAL_RUNNER = "FnApiRunner"


def has_flag(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def pipeline_options(beam_args: Sequence[str] = (), **overrides) -> PipelineOptions:
    """PipelineOptions from the flags a subcommand did not know.

    Without ``--runner`` the local FnApiRunner is used. ``overrides`` are set
    only where the user did not pass the flag.
    """
    args = list(beam_args)
    if not has_flag(args, "--runner"):
        args.append(f"--runner={LOCAL_RUNNER}")
    for key, value in overrides.items():
        if value is not None and not has_flag(args, f"--{key}"):
            args.append(f"--{key}={value}")
    return PipelineOptions(args)


def is_local(options: PipelineOptions) -> bool:
    runner = (options.view_as(StandardOptions).runner or "").lower()
    return runner in ("", "fnapirunner", "directrunner", "switchingdirectrunner",
                      "bundlebaseddirectrunner", "prismrunner", "testdirectrunner")
