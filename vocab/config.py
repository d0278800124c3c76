"""``VocabConfig``: every selection rule's flag, its default and its validation.

The defaults are the paper's (section 3): visual entities have a mean rater
score of at most 2.5, videos have at least 1,000 views and last 120-500 s,
entities need 200 videos, splits are 70/20/10. ``add_arguments`` puts the same
flags on any ``argparse`` parser (``vocab`` and ``build`` share them), and
``from_args`` turns the parsed namespace back into a validated config.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

DEFAULT_SPLIT = (70, 20, 10)
SPLIT_NAMES = ("train", "validate", "test")


def _parse_names(value, flag: str) -> Optional[frozenset]:
    """A type list from a flag: ``a,b;c`` or a sequence; None stays None (rule off)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.replace(";", ",").split(",")
    else:
        parts = list(value)
    names = frozenset(str(p).strip() for p in parts if str(p).strip())
    if not names:
        # An empty whitelist would drop every entity, which is never what a user means.
        raise ValueError(f"{flag} is empty: give comma-separated entity types, or omit the "
                         f"flag ({'every type passes' if 'white' in flag else 'no type is blacklisted'})")
    return names


def _parse_split(value) -> tuple:
    if isinstance(value, str):
        raw = [p.strip() for p in value.split(",")]
    else:
        raw = list(value)
    if len(raw) != 3:
        raise ValueError(f"--split needs 3 comma-separated parts (train,validate,test), "
                         f"got {len(raw)}: {value!r}; e.g. --split 70,20,10")
    parts = []
    for p in raw:
        try:
            f = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"--split part {p!r} is not a number: use e.g. --split 70,20,10") from None
        if not f >= 0:
            raise ValueError(f"--split part {p!r} is negative: parts are percentages >= 0")
        # Keep integers as ints so that the thresholds are exactly 0.70 and 0.90.
        parts.append(int(f) if f == int(f) else f)
    if abs(sum(parts) - 100) > 1e-9:
        raise ValueError(f"--split parts must sum to 100, got {'+'.join(map(str, parts))} = "
                         f"{sum(parts)}: e.g. --split 70,20,10")
    if parts[0] <= 0:
        raise ValueError(f"--split gives the train split 0%: TrainVideoCount and the "
                         f"vocabulary need train videos; got {value!r}")
    return tuple(parts)


@dataclass(frozen=True)
class VocabConfig:
    """The selection rules (issue 5). Construct directly or with ``from_args``."""
    type_whitelist: Optional[frozenset] = None   # None: every type passes (rule 1)
    type_blacklist: Optional[frozenset] = None   # None: no type is blacklisted (rule 1)
    max_mean_rating: float = 2.5                 # rule 2
    min_views: int = 1000                        # rule 3
    min_duration_s: float = 120.0                # rule 3
    max_duration_s: float = 500.0                # rule 3
    sample_size: Optional[int] = None            # rule 4; None: keep every candidate
    min_videos_per_entity: int = 200             # rule 5
    split: tuple = DEFAULT_SPLIT                 # rule 7 (percent train, validate, test)
    seed: int = 0                                # h(purpose, video_id, seed)

    def __post_init__(self):
        set_ = object.__setattr__   # frozen dataclass: normalise in place
        set_(self, "type_whitelist", _parse_names(self.type_whitelist, "--type_whitelist"))
        set_(self, "type_blacklist", _parse_names(self.type_blacklist, "--type_blacklist"))
        set_(self, "split", _parse_split(self.split))
        try:
            mmr = float(self.max_mean_rating)
        except (TypeError, ValueError):
            raise ValueError(f"--max_mean_rating must be a number in [1, 5], "
                             f"got {self.max_mean_rating!r}") from None
        if not 1 <= mmr <= 5:
            raise ValueError(f"--max_mean_rating must lie in [1, 5] (the rating scale), got {mmr}")
        set_(self, "max_mean_rating", mmr)
        for name in ("min_views", "min_videos_per_entity", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    if float(value) != int(float(value)):
                        raise ValueError
                    value = int(float(value))
                except (TypeError, ValueError):
                    raise ValueError(f"--{name} must be an integer, got {value!r}") from None
                set_(self, name, value)
        if self.min_views < 0:
            raise ValueError(f"--min_views must be >= 0, got {self.min_views}")
        if self.min_videos_per_entity < 1:
            raise ValueError(f"--min_videos_per_entity must be >= 1 (an entity needs videos), "
                             f"got {self.min_videos_per_entity}")
        for name in ("min_duration_s", "max_duration_s"):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                raise ValueError(f"--{name} must be a number of seconds, "
                                 f"got {getattr(self, name)!r}") from None
            if not value >= 0:
                raise ValueError(f"--{name} must be >= 0 seconds, got {value}")
            set_(self, name, value)
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(f"--min_duration_s {self.min_duration_s} is above --max_duration_s "
                             f"{self.max_duration_s}: no video could pass")
        if self.sample_size is not None:
            if isinstance(self.sample_size, bool) or int(self.sample_size) != self.sample_size \
                    or self.sample_size < 1:
                raise ValueError(f"--sample_size must be a positive integer (or omitted to keep "
                                 f"every candidate), got {self.sample_size!r}")
            set_(self, "sample_size", int(self.sample_size))

    # -- argparse -----------------------------------------------------------------------
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the rule flags (issue 5, each with its default) to ``parser``."""
        d = VocabConfig()
        g = parser.add_argument_group("selection rules")
        g.add_argument("--type_whitelist", default=None,
                       help="comma-separated entity types; an entity needs at least one "
                            "(default: every type passes)")
        g.add_argument("--type_blacklist", default=None,
                       help="comma-separated entity types; an entity with any is dropped "
                            "(default: none)")
        g.add_argument("--max_mean_rating", type=float, default=d.max_mean_rating,
                       help="keep entities whose mean rater score is at most this "
                            f"(1-5 scale; default {d.max_mean_rating}); needs --ratings")
        g.add_argument("--min_views", type=int, default=d.min_views,
                       help=f"minimum views of a video (default {d.min_views})")
        g.add_argument("--min_duration_s", type=float, default=d.min_duration_s,
                       help=f"minimum duration in seconds (default {d.min_duration_s:g})")
        g.add_argument("--max_duration_s", type=float, default=d.max_duration_s,
                       help=f"maximum duration in seconds (default {d.max_duration_s:g})")
        g.add_argument("--sample_size", type=int, default=None,
                       help="keep the N candidates with the smallest h('sample', video_id) "
                            "(default: all)")
        g.add_argument("--min_videos_per_entity", type=int, default=d.min_videos_per_entity,
                       help=f"drop entities with fewer sampled videos "
                            f"(default {d.min_videos_per_entity})")
        g.add_argument("--split", default=",".join(map(str, d.split)),
                       help="train,validate,test percentages summing to 100 (default 70,20,10)")
        g.add_argument("--seed", type=int, default=d.seed,
                       help=f"seed of the sampling and split hash (default {d.seed})")
        return parser

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> "VocabConfig":
        """The config from a namespace parsed with ``add_arguments``' flags."""
        kwargs = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)
                  if hasattr(ns, f.name)}
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """JSON-ready form (for stats/selection.json and dataset_info.json)."""
        out = dataclasses.asdict(self)
        for k in ("type_whitelist", "type_blacklist"):
            out[k] = None if out[k] is None else sorted(out[k])
        out["split"] = list(self.split)
        return out

    def split_thresholds(self) -> tuple[float, float]:
        """(train upper bound, validate upper bound) for u in [0, 1)."""
        a, b, _ = self.split
        return a / 100, (a + b) / 100


def config_from_argv(argv: Sequence[str]) -> VocabConfig:
    """Convenience for tests and scripts: parse only rule flags."""
    parser = VocabConfig.add_arguments(argparse.ArgumentParser())
    return VocabConfig.from_args(parser.parse_args(list(argv)))
