"""``run_pipeline.py vocab``: build the vocabulary, select videos, write the splits.

    python run_pipeline.py vocab --videos M --entities E [--ratings R] --output_dir OUT \\
        [rule flags, see --help] [Beam flags, e.g. --runner DataflowRunner ...]

Flags this command does not know go to Beam's PipelineOptions (local default:
the FnApiRunner). The outputs are staged and published by ``vocab.launch``. After
the run it prints the split sizes and the excluded rows per reason, read back
from OUT/stats/selection.json.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yt8m import fs
from yt8m.vocab import outputs
from yt8m.vocab.config import VocabConfig
from yt8m.vocab.launch import run_selection


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py vocab",
        description="Select videos and entities (issue 5 rules) and write vocabulary.csv, "
                    "splits.csv, excluded*.csv, private/test_labels.csv and stats/. Unknown "
                    "flags go to Beam's PipelineOptions.")
    parser.add_argument("--videos", required=True,
                        help="manifest CSV or JSONL: video_id,uri,views,duration_s,entities")
    parser.add_argument("--entities", required=True,
                        help="entity catalog CSV: kg_id,name,types,vertical,description,wiki_url")
    parser.add_argument("--ratings", default=None,
                        help="rater scores CSV: kg_id,rater_id,score (without it rule 2 is off)")
    parser.add_argument("--output_dir", required=True, help="folder for the outputs (local or gs://)")
    VocabConfig.add_arguments(parser)
    return parser


def parse(argv: Optional[Sequence[str]]) -> tuple[argparse.Namespace, VocabConfig, list[str]]:
    parser = build_parser()
    ns, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config = VocabConfig.from_args(ns)
    except ValueError as e:
        parser.error(str(e))
    return ns, config, beam_args


def run(argv: Optional[Sequence[str]] = None, test_pipeline=None):
    """Build and run the selection pipeline; returns the PipelineResult (finished)."""
    ns, config, beam_args = parse(argv)
    return run_selection(ns.videos, ns.entities, ns.ratings, config, ns.output_dir,
                         beam_args, test_pipeline=test_pipeline)


def summary(output_dir: str) -> str:
    """Split sizes and exclusions per reason, from OUT/stats/selection.json."""
    acc = fs.read_json(fs.join(output_dir, outputs.STATS_DIR, outputs.SELECTION_JSON))
    rows, ents = acc["rows"], acc["entities"]
    lines = [f"rows: {rows['total']:,}  selected: {rows['selected']:,}  "
             f"excluded: {rows['excluded']:,}",
             "splits: " + "  ".join(f"{k} {v:,}" for k, v in acc["splits"].items()),
             "excluded rows: " + "  ".join(f"{k} {v:,}" for k, v in
                                           rows["excluded_by_reason"].items() if v),
             f"vocabulary: {ents['vocabulary']:,} of {ents['catalog']:,} catalog entities; "
             "excluded: " + "  ".join(f"{k} {v:,}" for k, v in
                                      ents["excluded_by_reason"].items() if v),
             f"unknown entities: {acc['unknown_entities']['distinct']:,} ids, "
             f"{acc['unknown_entities']['mentions']:,} mentions",
             f"outputs: {output_dir}"]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ns, _, _ = parse(argv)
    try:
        run(argv)
    except (FileNotFoundError, ValueError) as e:
        # Input problems found while building the pipeline: one clear line, no trace.
        print(f"run_pipeline.py vocab: {e}", file=sys.stderr)
        return 2
    print(summary(ns.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
