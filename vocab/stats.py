"""Selection statistics: the accounting, the paper's figures as JSON and as PNG plots.

``accounting`` says what happened to every manifest row and catalog entity
(``stats/selection.json``; the pipeline merges it into ``dataset_info.json``).
``statistics`` holds the dataset description of the paper's section 3.4
(``stats/statistics.json``): videos per entity by rank (Figure 5), entities
and train videos per vertical (Figure 6), split sizes (Table 2), labels per
video, specificity (Figure 4b). ``plot_all`` draws them with matplotlib's Agg
backend (no display needed).

Public statistics never carry test labels per entity: videos-per-entity is a
list of counts by rank (no kg_id), and per-vertical video counts are train only.
"""
from __future__ import annotations

import io
import json
from typing import Iterable, Mapping, Optional

from yt8m.vocab.config import SPLIT_NAMES, VocabConfig
from yt8m.vocab.rules import ENTITY_REASONS, SPECIFICITIES, VIDEO_REASONS


def _sorted_counts(counts: Mapping, keys: Iterable) -> dict:
    return {k: int(counts.get(k, 0)) for k in keys}


def accounting(config: VocabConfig, excluded: Mapping[str, int], splits: Mapping[str, int],
               entities_excluded: Mapping[str, int], catalog_entities: int,
               vocabulary_size: int, unknown: Mapping, inputs: Mapping[str, Optional[str]]) -> dict:
    """Every manifest row and catalog entity, once, by outcome."""
    selected = sum(int(v) for v in splits.values())
    excluded_total = sum(int(v) for v in excluded.values())
    return {
        "inputs": dict(inputs),
        "config": config.to_dict(),
        "rows": {
            "total": selected + excluded_total,
            "selected": selected,
            "excluded": excluded_total,
            "excluded_by_reason": _sorted_counts(excluded, VIDEO_REASONS),
        },
        "splits": _sorted_counts(splits, SPLIT_NAMES),
        "entities": {
            "catalog": int(catalog_entities),
            "vocabulary": int(vocabulary_size),
            "excluded_by_reason": _sorted_counts(entities_excluded, ENTITY_REASONS),
        },
        "unknown_entities": dict(unknown),
    }


def statistics(vocabulary: list[dict], train_per_vertical: Mapping[str, int],
               labels_per_video: Mapping[int, int], splits: Mapping[str, int]) -> dict:
    """The paper's section 3.4 figures from the vocabulary rows and per-video counts."""
    entities_per_vertical: dict[str, int] = {}
    specificity: dict[str, int] = {}
    for row in vocabulary:
        for v in {row.get(f"Vertical{i}") for i in (1, 2, 3)} - {None, ""}:
            entities_per_vertical[v] = entities_per_vertical.get(v, 0) + 1
        s = row.get("Specificity") or "unrated"
        specificity[s] = specificity.get(s, 0) + 1
    videos = sum(int(n) for n in labels_per_video.values())
    labels = sum(int(k) * int(n) for k, n in labels_per_video.items())
    return {
        "vocabulary_size": len(vocabulary),
        # Figure 5: counts only, by rank, so no entity's test count can be derived.
        "videos_per_entity_by_rank": sorted((int(r["VideoCount"]) for r in vocabulary),
                                            reverse=True),
        "entities_per_vertical": dict(sorted(entities_per_vertical.items(),
                                             key=lambda kv: (-kv[1], kv[0]))),
        "train_videos_per_vertical": dict(sorted(((k, int(v)) for k, v in
                                                  train_per_vertical.items()),
                                                 key=lambda kv: (-kv[1], kv[0]))),
        "split_sizes": _sorted_counts(splits, SPLIT_NAMES),
        "labels_per_video": {
            "histogram": {str(k): int(labels_per_video[k]) for k in sorted(labels_per_video)},
            "mean": labels / videos if videos else 0.0,
        },
        "specificity": {k: specificity.get(k, 0) for k in (*SPECIFICITIES, "unrated")
                        if specificity.get(k, 0) or k != "unrated"},
    }


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def figure6(stats: dict):
    """Figure 6 as a matplotlib Figure: (a) entities and (b) train videos per vertical."""
    import matplotlib
    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    # Each panel keeps its own vertical names (the two orders differ); the
    # constrained layout gives each panel's names their own room, so the right
    # panel's labels never run into the left panel's bars.
    ev = stats["entities_per_vertical"]
    tv = stats["train_videos_per_vertical"]
    rows = max(len(ev), len(tv), 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 1.6 + 0.28 * rows), layout="constrained")
    a1.barh(list(ev)[::-1], list(ev.values())[::-1])
    from matplotlib.ticker import MaxNLocator
    a1.xaxis.set_major_locator(MaxNLocator(integer=True))   # counts of entities
    a1.set_title("(a) entities per vertical")
    a1.set_xlabel("entities")
    a2.barh(list(tv)[::-1], list(tv.values())[::-1], color="C1")
    if tv:
        from matplotlib.ticker import FuncFormatter, NullFormatter
        a2.set_xscale("log")
        # Bars start at 0.5 so that a vertical with one video still shows one;
        # plain numbers on the decades, none on the minor ticks (they collide).
        a2.set_xlim(left=0.5, right=max(tv.values()) * 2.5)
        a2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else ""))
        a2.xaxis.set_minor_formatter(NullFormatter())
    for ax, values in ((a1, ev), (a2, tv)):
        for y, n in enumerate(list(values.values())[::-1]):
            ax.annotate(f"{n:,}", (n, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
    if ev:
        a1.set_xlim(right=max(ev.values()) * 1.12)
    a2.set_title("(b) train videos per vertical (log)")
    a2.set_xlabel("train videos")
    for ax in (a1, a2):
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(y=0.5 / rows)
    fig.suptitle("Figure 6: top-level verticals")
    return fig


def plot_all(stats: dict) -> dict[str, bytes]:
    """PNG bytes by file name: figure5, figure6, table2 and specificity."""
    # matplotlib only when plotting (it costs a second to import), with the
    # Agg backend chosen before pyplot loads: files only, never a display.
    import matplotlib
    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    counts = stats["videos_per_entity_by_rank"]
    fig, ax = plt.subplots(figsize=(5, 4))
    if counts:
        ax.loglog(range(1, len(counts) + 1), counts, marker=".", linestyle="-")
    ax.set_xlabel("entity rank")
    ax.set_ylabel("number of videos")
    ax.set_title("Figure 5: videos per entity (log-log)")
    out["figure5_videos_per_entity.png"] = _png(fig)
    plt.close(fig)

    fig = figure6(stats)
    out["figure6_verticals.png"] = _png(fig)
    plt.close(fig)

    sizes = stats["split_sizes"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(list(sizes), list(sizes.values()), color=["C0", "C1", "C2"])
    total = sum(sizes.values())
    for i, (name, n) in enumerate(sizes.items()):
        ax.annotate(f"{n:,}\n({100 * n / total:.1f}%)" if total else "0", (i, n),
                    ha="center", va="bottom", fontsize=8)
    ax.set_title(f"Table 2: partition sizes (total {total:,})")
    ax.margins(y=0.25)
    out["table2_split_sizes.png"] = _png(fig)
    plt.close(fig)

    spec = stats["specificity"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(spec), list(spec.values()))
    ax.set_title("Figure 4b: vocabulary by specificity")
    out["figure4b_specificity.png"] = _png(fig)
    plt.close(fig)
    return out
