"""Synthetic selection inputs: an entity catalog, rater scores and video manifests.

For tests, benchmarks and the demo: entity popularity follows a Zipf law (as
the paper's Figure 5 does), about 10% of entities carry a blacklisted type,
rater scores spread over the 1-5 scale, and a manifest can carry malformed
rows, duplicated ids and entities unknown to the catalog in chosen fractions.
Everything is a deterministic function of ``seed``. The videos are not real:
``uri`` points at ``{uri_prefix}/{video_id}.mp4``.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import os
from dataclasses import dataclass
import numpy as np

VISUAL_TYPES = ("sport", "animal", "food", "vehicle", "tourist_attraction",
                "musical_instrument", "video_game", "hobby", "invention", "dish")
BLACKLIST_TYPES = ("music_artist", "album", "software", "musical_composition")
VERTICALS = ("Arts & Entertainment", "Games", "Autos & Vehicles", "Sports", "Food & Drink",
             "Computers & Electronics", "Pets & Animals", "Hobbies & Leisure", "Science",
             "Travel", "Home & Garden", "Beauty & Fitness", "Shopping", "Business & Industrial",
             "Books & Literature", "Jobs & Education")


@dataclass(frozen=True)
class Corpus:
    entities: str
    ratings: str
    videos: str
    kg_ids: tuple


def kg_id(i: int) -> str:
    return f"/m/0{i:06x}"


def write_catalog(out_dir: str, n_entities: int = 500, seed: int = 0,
                  rated_fraction: float = 0.95) -> tuple[str, str, list[str]]:
    """entities.csv and ratings.csv (3 raters each) under out_dir; returns paths and kg_ids."""
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    ids = [kg_id(i) for i in range(n_entities)]
    ent_path = os.path.join(out_dir, "entities.csv")
    rat_path = os.path.join(out_dir, "ratings.csv")
    with open(ent_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("kg_id", "name", "types", "vertical", "description", "wiki_url"))
        for i, kg in enumerate(ids):
            types = list(rng.choice(VISUAL_TYPES, size=rng.integers(1, 3), replace=False))
            if rng.random() < 0.10:
                types.append(str(rng.choice(BLACKLIST_TYPES)))
            verts = rng.choice(VERTICALS, size=rng.integers(1, 4), replace=False)
            name = f"Entity {i}"
            w.writerow((kg, name, ";".join(types), ";".join(verts),
                        f"{name}, a synthetic entity, with commas and \"quotes\".",
                        f"https://en.wikipedia.org/wiki/Entity_{i}"))
    with open(rat_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("kg_id", "rater_id", "score"))
        for kg in ids:
            if rng.random() >= rated_fraction:
                continue
            # Most entities are fairly visual (the catalog was pre-filtered by type).
            base = rng.uniform(1.0, 4.0)
            for r in range(3):
                score = int(np.clip(round(base + rng.normal(0, 0.6)), 1, 5))
                w.writerow((kg, f"rater{r}", score))
    return ent_path, rat_path, ids


def _video_ids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.bytes(8 * n)
    return [base64.urlsafe_b64encode(raw[i:i + 8]).decode("ascii")[:11] for i in range(0, 8 * n, 8)]


def write_manifest(path: str, n_rows: int, kg_ids: list[str], seed: int = 0,
                   zipf_a: float = 1.0, malformed_fraction: float = 0.0,
                   duplicate_fraction: float = 0.0, unknown_fraction: float = 0.02,
                   uri_prefix: str = "file:///videos") -> str:
    """A CSV (or JSONL, by extension) manifest of n_rows rows with Zipf entity popularity."""
    rng = np.random.default_rng(seed + 1)
    k = len(kg_ids)
    # Zipf over a random permutation, so popularity is unrelated to the kg_id order.
    p = 1.0 / np.arange(1, k + 1) ** zipf_a
    p /= p.sum()
    perm = rng.permutation(k)
    ids = _video_ids(rng, n_rows)
    n_dup = int(n_rows * duplicate_fraction)
    if n_dup:
        src = rng.integers(0, n_rows, size=n_dup)
        dst = rng.integers(0, n_rows, size=n_dup)
        for s, d in zip(src, dst):
            ids[d] = ids[s]
    views = np.round(np.exp(rng.normal(8.5, 2.0, size=n_rows))).astype(np.int64)
    durations = np.where(rng.random(n_rows) < 0.85, rng.uniform(120, 500, n_rows),
                         rng.uniform(10, 1200, n_rows))
    empty_duration = rng.random(n_rows) < 0.03
    n_ent = np.minimum(1 + rng.poisson(1.5, size=n_rows), 8)
    picks = perm[rng.choice(k, size=int(n_ent.sum()), p=p)]
    unknown = rng.random(picks.size) < unknown_fraction
    malformed = rng.random(n_rows) < malformed_fraction
    kinds = rng.integers(0, 3, size=n_rows)
    jsonl = path.lower().endswith((".jsonl", ".ndjson", ".json"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    out = io.BytesIO()
    if not jsonl:
        out.write(b"video_id,uri,views,duration_s,entities\n")
    pos = 0
    for i in range(n_rows):
        ents = [f"/m/unknown_{int(e)}" if u else kg_ids[int(e)]
                for e, u in zip(picks[pos:pos + n_ent[i]], unknown[pos:pos + n_ent[i]])]
        pos += int(n_ent[i])
        vid = ids[i]
        dur = "" if empty_duration[i] else f"{durations[i]:.2f}"
        v = str(int(views[i]))
        if malformed[i] and kinds[i] == 0:
            v = "many"                                   # non-numeric views
        if jsonl:
            line = json.dumps({"video_id": vid, "uri": f"{uri_prefix}/{vid}.mp4", "views": v,
                               "duration_s": dur, "entities": ents}) + "\n"
        else:
            buf.seek(0)
            buf.truncate()
            w.writerow((vid, f"{uri_prefix}/{vid}.mp4", v, dur, ";".join(ents)))
            line = buf.getvalue()
        data = line.encode("utf-8")
        if malformed[i] and kinds[i] == 1:
            data = data.replace(b",", b"\xff,", 1)      # invalid UTF-8 in the video_id field
        elif malformed[i] and kinds[i] == 2 and not jsonl:
            data = data.rstrip(b"\n") + b",extra\n"    # wrong number of fields
        out.write(data)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(out.getvalue())
    os.replace(tmp, path)
    return path


def make_corpus(out_dir: str, n_rows: int, n_entities: int = 500, seed: int = 0,
                manifest_name: str = "videos.csv", **manifest_kwargs) -> Corpus:
    """Catalog, ratings and one manifest under out_dir."""
    ent, rat, ids = write_catalog(out_dir, n_entities, seed)
    vids = write_manifest(os.path.join(out_dir, manifest_name), n_rows, ids, seed,
                          **manifest_kwargs)
    return Corpus(entities=ent, ratings=rat, videos=vids, kg_ids=tuple(ids))
