"""Helpers for the vocab tests: write small inputs, run SelectVideos, read the outputs."""
from __future__ import annotations

import csv
import json
import os

import apache_beam as beam

from yt8m.pipeline.runner import pipeline_options
from yt8m.vocab.select import SelectVideos

ENTITY_HEADER = "kg_id,name,types,vertical,description,wiki_url\n"
MANIFEST_HEADER = "video_id,uri,views,duration_s,entities\n"


def write(path, text) -> str:
    with open(path, "wb") as fh:
        fh.write(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def entity_line(kg, types="sport", verticals="Sports", name=None) -> str:
    name = name or f"Name {kg}"
    return f"{kg},{name},{types},{verticals},\"About {name}, in short\",https://w/{kg[3:]}\n"


def run_select(tmp, videos, entities, ratings, config) -> dict:
    """Run SelectVideos into tmp/out and return every output, parsed."""
    out = os.path.join(str(tmp), "out")
    selected_path = os.path.join(str(tmp), "selected.jsonl")
    with beam.Pipeline(options=pipeline_options([])) as p:
        result = p | "Select" >> SelectVideos(videos, entities, ratings, config, out)
        _ = (result.selected
             | "ToJson" >> beam.Map(lambda video: json.dumps(video.to_dict(), sort_keys=True))
             | "WriteSelected" >> beam.io.WriteToText(selected_path, shard_name_template=""))
    return read_outputs(out, selected_path)


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, r)) for r in reader]


def read_outputs(out, selected_path=None) -> dict:
    res = {"out": out}
    for name in ("vocabulary", "splits", "excluded", "excluded_entities"):
        res[name + "_header"], res[name] = read_csv(os.path.join(out, name + ".csv"))
    res["test_labels_header"], res["test_labels"] = read_csv(
        os.path.join(out, "private", "test_labels.csv"))
    with open(os.path.join(out, "stats", "selection.json")) as fh:
        res["selection"] = json.load(fh)
    with open(os.path.join(out, "stats", "statistics.json")) as fh:
        res["statistics"] = json.load(fh)
    if selected_path:
        with open(selected_path) as fh:
            res["selected"] = [json.loads(line) for line in fh if line.strip()]
    return res
