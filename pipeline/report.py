"""What a job tells its user: dataset_info.json's content, the closing summary, the messages.

Pure functions of the counts (``pipeline.counts``: counts.json), the published
shards' sizes and the run's configuration; ``pipeline.launch`` reads and
writes the files.

* ``dataset_info(...)``: the content of dataset_info.json (splits, accounting,
  reasons, decode warnings by kind, flags, versions, model, fit, cache, counters);
* ``summary_text(info)``: the summary a build prints on stderr at the end;
* ``no_video_written_message``: why a build wrote nothing, pointing at the files
  that say why per video;
* ``extract_summary`` / ``extract_failed_message``: what ``extract`` prints.
"""
from __future__ import annotations

import importlib
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

from yt8m import counters, fs
from yt8m.pipeline.starter_code import summary_line as starter_code_line
from yt8m.pipeline.io import SPLITS
from yt8m.pipeline.progress import fmt_duration

VERSIONED = ("apache_beam", "tensorflow", "keras", "av", "numpy", "sklearn")


def versions() -> dict:
    """The versions of Python, the libraries the data depends on, and the project."""
    vers = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            vers[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - a third-party library reported as missing, not fatal
            vers[name] = None
    try:
        vers["yt8m_builder"] = version("yt8m-builder")
    except PackageNotFoundError:  # running from a source tree that is not installed
        vers["yt8m_builder"] = None
    return vers


def split_sizes(counts: dict, sizes: dict) -> dict:
    """dataset_info.json's ``splits``: videos, frames, bytes and shards per split."""
    splits = {}
    for split in SPLITS:
        c = counts["splits"].get(split, {"videos": 0, "frames": 0})
        frame, video = sizes[f"frame/{split}"], sizes[f"video/{split}"]
        splits[split] = {"videos": c["videos"], "frames": c["frames"],
                         "frame_bytes": frame["bytes"], "video_bytes": video["bytes"],
                         "bytes": frame["bytes"] + video["bytes"], "shards": frame["files"]}
    return splits


def accounting(counts: dict) -> dict:
    """Every manifest row once: written + excluded + failed, against the manifest's rows."""
    total = counts["written"] + counts["excluded"] + counts["failed"]
    return {"manifest_rows": counts["manifest_rows"], "written": counts["written"],
            "excluded": counts["excluded"], "failed": counts["failed"], "total": total,
            "balanced": total == counts["manifest_rows"]}


def dataset_info(*, output_dir: str, counts: dict, sizes: dict, fit: dict, flags: dict,
                 model_info: dict, inputs: dict, cache_dir: str, counter_values: dict,
                 entities: Optional[int], resplit_from: Optional[str],
                 elapsed_s: float, starter_code: Optional[dict] = None) -> dict:
    """The content of dataset_info.json (docs/pipeline.md lists the fields)."""
    info = {
        "output_dir": output_dir,
        "splits": split_sizes(counts, sizes),
        "entities": entities,
        "accounting": accounting(counts),
        "excluded_reasons": counts["excluded_reasons"],
        "failure_reasons": counts["failure_reasons"],
        "decode_warnings": counts["decode_warnings"],
        "selection": counts["selection"],
        "flags": flags,
        "versions": versions(),
        "model": model_info,
        "weights": {k: model_info.get(k) for k in ("spec", "source", "sha256", "random")},
        "inputs": inputs,
        "cache_dir": cache_dir,
        "fit": fit,
        "cache": {"hits": counter_values.get(counters.CACHE_HITS, 0),
                  "extracted": counter_values.get(counters.VIDEOS_EXTRACTED, 0),
                  "frames_extracted": counter_values.get(counters.FRAMES_EXTRACTED, 0)},
        "counters": dict(sorted(counter_values.items())),
        "resplit_from": resplit_from,
        "elapsed_s": round(elapsed_s, 3),
        "decode": decode_section(counter_values, flags.get("decode_device", "cpu")),
        "thumbnails": thumbnails_section(counter_values, flags.get("thumbnails", 0), cache_dir),
    }
    if starter_code is not None:  # pipeline.starter_code: what the released readers get right
        info["starter_code"] = starter_code
    return info


def decode_section(values: dict, requested: str) -> dict:
    """dataset_info ``decode``: what decoding this run's extracted videos took (Beam counters)."""
    prefix, suffix = "decode_device_", "_videos"
    by_device = {k[len(prefix):-len(suffix)]: v for k, v in sorted(values.items())
                 if k.startswith(prefix) and k.endswith(suffix)}
    return {"requested_device": requested, "videos_by_device": by_device,
            "device_fallbacks": values.get(counters.DECODE_DEVICE_FALLBACKS, 0),
            "packets": values.get(counters.DECODE_PACKETS, 0),
            "packets_decoded": values.get(counters.DECODE_PACKETS_DECODED, 0),
            "packets_skipped": values.get(counters.DECODE_PACKETS_SKIPPED, 0),
            "frames_decoded": values.get(counters.DECODE_FRAMES_DECODED, 0),
            "restarts": values.get(counters.DECODE_RESTARTS, 0)}


def thumbnails_section(values: dict, per_video: int, root: str) -> dict:
    """dataset_info ``thumbnails``: the JPEG strips this run wrote (``pipeline.thumbnails``)."""
    from yt8m.pipeline.thumbnails import thumbnails_dir
    return {"per_video": per_video, "dir": thumbnails_dir(root) if per_video else None,
            "videos_written": values.get(counters.THUMBNAILS_VIDEOS_WRITTEN, 0),
            "images_written": values.get(counters.THUMBNAILS_IMAGES_WRITTEN, 0),
            "videos_without": values.get(counters.THUMBNAILS_VIDEOS_NONE, 0),
            "write_failures": values.get(counters.THUMBNAILS_WRITE_FAILURES, 0)}


def _top(reasons: dict, n: int = 3) -> str:
    items = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


def summary_text(info: dict) -> str:
    """The closing summary of a build from its dataset_info.json content."""
    acc = info["accounting"]
    lines = [f"build finished in {fmt_duration(info.get('elapsed_s', 0))} -> "
             f"{info['output_dir']}"]
    for split, c in info["splits"].items():
        lines.append(f"  {split:<9} {c['videos']:>7} videos {c['frames']:>9} frames "
                     f"{c['bytes'] / 1e6:>9.2f} MB (frame + video records)")
    lines.append(f"  excluded  {acc['excluded']:>7} rows   top reasons: "
                 f"{_top(info.get('excluded_reasons', {}))}")
    lines.append(f"  failed    {acc['failed']:>7} videos top reasons: "
                 f"{_top(info.get('failure_reasons', {}))}")
    warned = info.get("decode_warnings") or {}
    if warned.get("videos"):
        lines.append(f"  decoded with warnings {warned['videos']} videos (kept, see "
                     f"dataset_info.json decode_warnings): "
                     f"{_top(warned.get('by_kind', {}))}")
    lines.append(f"  accounting: {acc['written']} written + {acc['excluded']} excluded + "
                 f"{acc['failed']} failed = {acc['total']} of {acc['manifest_rows']} "
                 f"manifest rows ({'ok' if acc['balanced'] else 'MISMATCH'})")
    cache = info.get("cache", {})
    if cache:
        lines.append(f"  features: {cache.get('extracted', 0)} videos extracted, "
                     f"{cache.get('hits', 0)} from the cache")
    if info.get("starter_code"):
        lines.append(starter_code_line(info["starter_code"]))
    return "\n".join(lines)


def no_video_written_message(out: str, counts: dict, fit: dict) -> str:
    """Why a build wrote nothing, pointing at the files in ``out`` that say why per video."""
    reasons = sorted(counts.get("failure_reasons", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    top = ", ".join(f"{r} {n}" for r, n in reasons[:3])
    msg = (f"no video could be written: {counts['failed']} selected videos failed"
           f"{f' ({top})' if top else ''}: see {fs.join(out, 'failures.jsonl')} for each "
           f"video's reason; {counts['excluded']} rows were excluded by the selection rules "
           f"(see {fs.join(out, 'excluded.csv')})")
    if fit and fit.get("pca") is None:
        msg += ("; no train frames to fit the PCA on, so nothing could be encoded (fix or "
                "replace the failed videos, or check --split and --min_videos_per_entity)")
    return msg


def extract_summary(succeeded: int, failed: int, failures_path: str) -> str:
    """The line ``extract`` prints on stdout."""
    return (f"extract: {succeeded} videos succeeded, {failed} failed"
            + (f" (see {failures_path})" if failed else ""))


def extract_failed_message(failed: int) -> str:
    """Why ``extract`` exits 1: nothing to use."""
    if failed:
        return ("no video could be extracted, so there is nothing to use; failures.jsonl "
                "gives each video's reason")
    return "the manifest lists no videos"
