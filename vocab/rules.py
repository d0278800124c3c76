"""The selection rules of issue 5 as pure functions (no Beam, no I/O).

Everything the Beam transform decides goes through these functions, so that
anyone can recompute a selection from the inputs and the flags:

- ``h(purpose, video_id, seed)``: the uniform hash behind sampling and splits.
- ``entity_reason`` / ``specificity``: rules 1-2 on the entity catalog.
- ``video_reason``: rules 3 (and the malformed-row check) on one manifest row.
- ``sample_key``: the total order of rule 4 (smallest hash first).
- ``split_of``: rule 7.
- ``index_order``: rule 6.

Ratings are compared as exact fractions: a mean of 2.5 made of decimal scores
is kept at ``--max_mean_rating 2.5`` even where float sums would round up.
"""
from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Iterable, Mapping, Optional, Sequence

from yt8m.vocab.config import SPLIT_NAMES, VocabConfig

# Video exclusion reasons, in the order the first applicable one is reported.
VIDEO_REASONS = ("duplicate_id", "malformed_row", "views", "duration", "no_visual_entity",
                 "not_sampled", "rare_entities_only")
ENTITY_REASONS = ("type", "unrated", "rating", "too_few_videos")
SPECIFICITIES = ("coarse", "medium", "fine")

_TWO_64 = 2 ** 64


def h64(purpose: str, video_id: str, seed: int = 0) -> int:
    """The first 8 bytes (big-endian) of sha256(f"{seed}:{purpose}:{video_id}")."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{video_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def h(purpose: str, video_id: str, seed: int = 0) -> float:
    """Issue 5's hash: uniform in [0, 1); depends on nothing but its arguments."""
    return h64(purpose, video_id, seed) / _TWO_64


# -- entities (rules 1, 2) -------------------------------------------------------------

def to_fraction(score) -> Fraction:
    """A rating as an exact fraction (``"2.5"`` -> 5/2); ValueError if not a number."""
    if isinstance(score, Fraction):
        return score
    if isinstance(score, float):
        # Floats go through their shortest repr so 2.1 means 21/10, as the user wrote it.
        return Fraction(repr(score))
    return Fraction(str(score).strip())


def mean_rating(scores: Iterable) -> Optional[Fraction]:
    """Exact mean of the scores, or None for no scores."""
    values = [to_fraction(s) for s in scores]
    if not values:
        return None
    return sum(values, Fraction(0)) / len(values)


def entity_reason(types: Sequence[str], mean: Optional[Fraction], has_ratings: bool,
                  config: VocabConfig) -> Optional[tuple[str, str]]:
    """(reason, detail) if rules 1-2 drop the entity, else None.

    Order: ``type`` (rule 1), then ``unrated`` / ``rating`` (rule 2, only with a
    ratings file).
    """
    types = [t for t in types if t]
    if config.type_whitelist is not None and not any(t in config.type_whitelist for t in types):
        return "type", f"no whitelisted type among {sorted(types)}"
    if config.type_blacklist is not None:
        bad = sorted(t for t in types if t in config.type_blacklist)
        if bad:
            return "type", f"blacklisted type {bad}"
    if has_ratings:
        if mean is None:
            return "unrated", "no rating in the ratings file"
        if mean > to_fraction(config.max_mean_rating):
            return "rating", f"mean rating {float(mean):.4g} > {config.max_mean_rating:g}"
    return None


def specificity(mean: Optional[Fraction], max_mean_rating: float) -> str:
    """coarse / medium / fine: the third of [1, max_mean_rating] the mean falls in.

    Equal-width buckets; a mean on a boundary goes to the coarser bucket. Without
    ratings there is no specificity (empty string).
    """
    if mean is None:
        return ""
    top = to_fraction(max_mean_rating)
    width = (top - 1) / 3
    if mean <= 1 + width:
        return "coarse"
    if mean <= 1 + 2 * width:
        return "medium"
    return "fine"


# -- videos (rule 3) -------------------------------------------------------------------

def video_reason(error: Optional[str], views: Optional[int], duration_s: Optional[float],
                 entities: Sequence[str], visual: Mapping | set,
                 config: VocabConfig) -> tuple[Optional[str], object]:
    """Rule 3 on one (non-duplicated) manifest row.

    Returns ``(reason, detail)`` for an excluded row, in the order
    ``malformed_row``, ``views``, ``duration``, ``no_visual_entity``; or
    ``(None, labels)`` for a candidate, ``labels`` being its entities that passed
    rule 2, sorted and without repeats. Entities not in ``visual`` (unknown to
    the catalog, or dropped by rules 1-2) are not labels.
    """
    if error is not None:
        return "malformed_row", error
    if views is None or views < config.min_views:
        return "views", f"views {views} < {config.min_views}"
    # An empty duration is not filtered here (the decoder measures it later).
    if duration_s is not None and not (config.min_duration_s <= duration_s
                                       <= config.max_duration_s):
        return "duration", (f"duration_s {duration_s:g} outside "
                            f"[{config.min_duration_s:g}, {config.max_duration_s:g}]")
    labels = tuple(sorted({e for e in entities if e in visual}))
    if not labels:
        return "no_visual_entity", f"none of {len(entities)} entities passed rules 1-2"
    return None, labels


# -- sampling, index, split (rules 4, 6, 7) --------------------------------------------

def sample_key(video_id: str, seed: int = 0) -> tuple[int, str]:
    """Rule 4's order: smallest h("sample", video_id) first.

    The full 64-bit value orders exactly like ``h`` (h is it divided by 2**64);
    the video_id breaks the (astronomically rare) exact ties deterministically.
    """
    return h64("sample", video_id, seed), video_id


def split_of(video_id: str, config: VocabConfig) -> str:
    """Rule 7: train if u < 0.70, validate if u < 0.90, else test (with the default split)."""
    u = h("split", video_id, config.seed)
    train_max, validate_max = config.split_thresholds()
    if u < train_max:
        return SPLIT_NAMES[0]
    if u < validate_max:
        return SPLIT_NAMES[1]
    return SPLIT_NAMES[2]


def index_order(counts: Iterable[tuple[str, int]]) -> list[str]:
    """Rule 6: kg_ids by video count descending, ties by kg_id ascending."""
    return [kg for kg, _ in sorted(counts, key=lambda kv: (-kv[1], kv[0]))]


def kept_entities(counts: Mapping[str, int], min_videos: int) -> dict[str, int]:
    """Rule 5: entities with at least ``min_videos`` sampled videos."""
    return {kg: n for kg, n in counts.items() if n >= min_videos}
