"""``SelectVideos``: issue 5's selection as one Beam composite transform.

Applied to the pipeline root, it reads the manifest, the entity catalog and the
optional ratings, applies rules 1-7 (``vocab.rules``) and returns a
``SelectionResult`` of PCollections:

- ``selected``: ``yt8m.records.Video`` (``video_id``, ``uri``, ``split``,
  ``labels``: sorted vocabulary Index values, ``duration_s``, ``line``; test
  videos carry their labels too, because the selection writes
  ``private/test_labels.csv`` from them);
- ``excluded``: ``yt8m.records.ExcludedRow`` (``video_id``, ``line``,
  ``reason``, ``detail``), one per manifest row not selected (``video_id``
  None when the row has none);
- ``excluded_entities``: ``{"kg_id", "reason", "detail"}``;
- ``vocabulary``: one dict per vocabulary row (the CSV columns plus ``VideoCount``);
- ``accounting`` / ``statistics``: one dict each (``stats/*.json``).

With ``output_dir`` it also applies ``WriteVocabOutputs`` (the jobs pass their
staging folder; ``pipeline.launch`` and ``vocab.launch`` publish it).

Scale: nothing holds the manifest in one place. Duplicates are found by a
GroupByKey on video_id, per-entity counts are CombinePerKey sums, the kept
entities and the Index reach the per-video steps as side inputs (the vocabulary
is small), and rule 4 needs no global sort: a 65,536-bucket histogram of the
sample hash finds the bucket holding the N-th smallest key, and only that
bucket (about N/65,536 keys, the hash being uniform) is gathered to find the
exact threshold. The manifest itself is read by one worker (line numbers need
a sequential read); every later step is parallel.
"""
from __future__ import annotations

import heapq
from fractions import Fraction
from typing import Any, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.pvalue import AsDict, AsList, AsSingleton

from yt8m import counters, fs
from yt8m.records import ExcludedRow, Video
from yt8m.vocab import catalog as catalog_io
from yt8m.vocab import rules, stats
from yt8m.vocab.config import SPLIT_NAMES, VocabConfig
from yt8m.vocab.manifest import MANIFEST_COLUMNS, iter_manifest
from yt8m.vocab.write import WriteVocabOutputs

_HIST_BITS = 16                      # 65,536 buckets of the 64-bit sample hash
_UNKNOWN_TOP = 20                    # most frequent unknown kg_ids kept in the stats

# One Beam counter object per name and worker.
_COUNTERS = counters.Counters()


def _excluded(video_id, line, reason, detail) -> ExcludedRow:
    _COUNTERS.inc(counters.vocab_excluded(reason))
    return ExcludedRow(video_id, line, reason, detail)


# -- manifest --------------------------------------------------------------------------

class _ReadManifest(beam.DoFn):
    """(video_id, row) for each manifest row, the row a compact tuple
    (line, video_id, uri, views, duration_s, entities, error); a row without a
    usable video_id is excluded at once (it cannot be grouped)."""
    NO_ID = "no_id"

    def process(self, path):
        rows = 0
        for r in iter_manifest(path, require_metadata=True):
            rows += 1
            if r.video_id is None:
                yield beam.pvalue.TaggedOutput(self.NO_ID, _excluded(
                    None, r.line, "malformed_row", r.error or "missing video_id"))
            else:
                yield r.video_id, (r.line, r.video_id, r.uri, r.views, r.duration_s,
                                   tuple(r.entities), r.error)
        _COUNTERS.inc(counters.VOCAB_ROWS, rows)


class _ApplyVideoRules(beam.DoFn):
    """Duplicates, then rule 3. Main output: candidates (video_id, line, uri, duration_s, labels)."""
    EXCLUDED = "excluded"
    UNKNOWN = "unknown"

    def __init__(self, config: VocabConfig):
        self.config = config

    def process(self, keyed, catalog):
        video_id, rows = keyed
        rows = list(rows)
        if len(rows) > 1:
            lines = sorted(r[0] for r in rows)
            for r in rows:
                yield beam.pvalue.TaggedOutput(self.EXCLUDED, _excluded(
                    video_id, r[0], "duplicate_id",
                    f"video_id on {len(rows)} lines: {', '.join(map(str, lines[:10]))}"
                    + (" ..." if len(lines) > 10 else "")))
            return
        line, _, uri, views, duration, entities, error = rows[0]
        if error is None:
            # Entities unknown to the catalog: not labels, but counted for the stats.
            for kg in set(entities):
                if kg not in catalog:
                    yield beam.pvalue.TaggedOutput(self.UNKNOWN, (kg, 1))
        reason, detail = rules.video_reason(error, views, duration, entities,
                                            _VisualView(catalog), self.config)
        if reason is not None:
            yield beam.pvalue.TaggedOutput(self.EXCLUDED, _excluded(video_id, line, reason,
                                                                    detail))
            return
        yield video_id, line, uri, duration, detail


class _VisualView:
    """``kg in view``: the entity is in the catalog and passed rules 1-2."""
    __slots__ = ("catalog",)

    def __init__(self, catalog):
        self.catalog = catalog

    def __contains__(self, kg):
        return self.catalog.get(kg, False)


# -- entities --------------------------------------------------------------------------

class MeanRatingFn(beam.CombineFn):
    """Exact mean of the scores (Fractions), so that 2.5 is never 2.5000000001."""

    def create_accumulator(self):
        return 0, 0  # (sum as Fraction or int, count)

    def add_input(self, acc, score):
        return acc[0] + score, acc[1] + 1

    def merge_accumulators(self, accs):
        total, n = 0, 0
        for s, c in accs:
            total, n = total + s, n + c
        return total, n

    def extract_output(self, acc):
        return Fraction(acc[0]) / acc[1] if acc[1] else None


class _ApplyEntityRules(beam.DoFn):
    """Rules 1-2. Main: (kg_id, info) for visual entities; tags: excluded, status."""
    EXCLUDED = "excluded"
    STATUS = "status"

    def __init__(self, config: VocabConfig, has_ratings: bool):
        self.config = config
        self.has_ratings = has_ratings

    def process(self, joined):
        kg, groups = joined
        entities = list(groups["entity"])
        means = list(groups.get("mean", ()))
        if not entities:
            # Rated but not in the catalog: nothing to keep; counted for the stats.
            _COUNTERS.inc(counters.VOCAB_RATINGS_FOR_UNKNOWN_ENTITIES)
            return
        entity = entities[0]
        mean = means[0] if means else None
        found = rules.entity_reason(entity.types, mean, self.has_ratings, self.config)
        yield beam.pvalue.TaggedOutput(self.STATUS, (kg, found is None))
        if found is not None:
            _COUNTERS.inc(counters.vocab_entities_excluded(found[0]))
            yield beam.pvalue.TaggedOutput(self.EXCLUDED,
                                           {"kg_id": kg, "reason": found[0], "detail": found[1]})
            return
        yield kg, {"name": entity.name, "wiki_url": entity.wiki_url,
                   "verticals": entity.verticals, "description": entity.description,
                   "specificity": rules.specificity(mean, self.config.max_mean_rating),
                   "mean_rating": None if mean is None else float(mean)}


class _FilterRareEntities(beam.DoFn):
    """Rule 5 on (kg_id, {"info", "count"}). Main: (kg_id, (count, info))."""
    EXCLUDED = "excluded"

    def __init__(self, min_videos: int):
        self.min_videos = min_videos

    def process(self, joined):
        kg, groups = joined
        infos = list(groups["info"])
        # Counts only exist for visual entities; an entity without its info is
        # skipped (defensive for partial inputs).
        if infos:
            count = sum(groups["count"])
            if count < self.min_videos:
                _COUNTERS.inc(counters.vocab_entities_excluded("too_few_videos"))
                yield beam.pvalue.TaggedOutput(self.EXCLUDED, {
                    "kg_id": kg, "reason": "too_few_videos",
                    "detail": f"{count} sampled videos < {self.min_videos}"})
            else:
                yield kg, (count, infos[0])


def _build_index(kept: list) -> dict:
    """Rule 6: {kg_id: (Index, verticals)} from [(kg_id, (count, info))]."""
    order = rules.index_order((kg, c) for kg, (c, _) in kept)
    verticals = {kg: info["verticals"] for kg, (_, info) in kept}
    return {kg: (i, verticals[kg]) for i, kg in enumerate(order)}


def _vocabulary_row(kept_item, index, train_counts) -> dict:
    kg, (count, info) = kept_item
    v = list(info["verticals"][:3]) + [""] * (3 - min(3, len(info["verticals"])))
    return {"Index": index[kg][0], "TrainVideoCount": int(train_counts.get(kg, 0)),
            "KnowledgeGraphId": kg, "Name": info["name"], "WikiUrl": info["wiki_url"],
            "Vertical1": v[0], "Vertical2": v[1], "Vertical3": v[2],
            "WikiDescription": info["description"], "Specificity": info["specificity"],
            "VideoCount": int(count)}


# -- sampling (rule 4) -----------------------------------------------------------------

class HashHistogramFn(beam.CombineFn):
    """Counts of sample keys per bucket of the top ``_HIST_BITS`` bits of the hash."""

    def create_accumulator(self):
        return np.zeros(1 << _HIST_BITS, dtype=np.int64)

    def add_input(self, acc, key):
        acc[key[0] >> (64 - _HIST_BITS)] += 1
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs).copy()
        for a in accs:
            out += a
        return out

    def extract_output(self, acc):
        return acc


def _boundary(hist: np.ndarray, n: int):
    """(bucket, k): keep buckets < bucket and the k smallest keys in it; None keeps all."""
    cum = np.cumsum(hist)
    if int(cum[-1]) <= n:
        return None
    b = int(np.searchsorted(cum, n))          # first bucket where the running total >= n
    below = int(cum[b - 1]) if b else 0
    return b, n - below


def _in_boundary_bucket(key, boundary) -> bool:
    return boundary is not None and key[0] >> (64 - _HIST_BITS) == boundary[0]


def _threshold(keys: list, boundary):
    """The largest sample key kept (keys <= it are sampled); None: keep all."""
    if boundary is None:
        return None
    k = boundary[1]
    return heapq.nsmallest(k, keys)[-1] if k > 0 else None


class _ApplySampling(beam.DoFn):
    NOT_SAMPLED = "not_sampled"

    def __init__(self, seed: int):
        self.seed = seed

    def process(self, cand, boundary, threshold):
        if boundary is None:
            yield cand
            return
        key = rules.sample_key(cand[0], self.seed)
        bucket = key[0] >> (64 - _HIST_BITS)
        keep = bucket < boundary[0] or (bucket == boundary[0] and threshold is not None
                                        and key <= threshold)
        if keep:
            yield cand
        else:
            yield beam.pvalue.TaggedOutput(self.NOT_SAMPLED, _excluded(
                cand[0], cand[1], "not_sampled", "hash above the --sample_size threshold"))


# -- labels and splits (rules 5-7) -----------------------------------------------------

class _AssignSplit(beam.DoFn):
    """Keeps the labels in the vocabulary, maps them to Index values, assigns the split."""
    EXCLUDED = "excluded"
    TRAIN_LABEL = "train_label"
    TRAIN_VERTICAL = "train_vertical"

    def __init__(self, config: VocabConfig):
        self.config = config

    def process(self, cand, index):
        video_id, line, uri, duration, kgs = cand
        kept = [kg for kg in kgs if kg in index]
        if not kept:
            yield beam.pvalue.TaggedOutput(self.EXCLUDED, _excluded(
                video_id, line, "rare_entities_only",
                f"all of {len(kgs)} labels have < {self.config.min_videos_per_entity} videos"))
            return
        split = rules.split_of(video_id, self.config)
        _COUNTERS.inc(counters.vocab_selected(split))
        if split == SPLIT_NAMES[0]:
            verticals = set()
            for kg in kept:
                yield beam.pvalue.TaggedOutput(self.TRAIN_LABEL, (kg, 1))
                verticals.update(index[kg][1])
            for v in verticals:
                yield beam.pvalue.TaggedOutput(self.TRAIN_VERTICAL, (v, 1))
        yield Video(video_id, uri, split=split, labels=tuple(sorted(index[kg][0] for kg in kept)),
                    duration_s=duration, line=line)


class UnknownEntitiesFn(beam.CombineFn):
    """(distinct ids, mentions, most frequent ids) of entities unknown to the catalog."""

    def create_accumulator(self):
        return 0, 0, []

    def add_input(self, acc, kv):
        distinct, mentions, top = acc
        top = heapq.nlargest(_UNKNOWN_TOP, top + [(kv[1], kv[0])])
        return distinct + 1, mentions + kv[1], top

    def merge_accumulators(self, accs):
        distinct, mentions, top = 0, 0, []
        for d, m, t in accs:
            distinct, mentions = distinct + d, mentions + m
            top = heapq.nlargest(_UNKNOWN_TOP, top + t)
        return distinct, mentions, top

    def extract_output(self, acc):
        return {"distinct": acc[0], "mentions": acc[1],
                "most_frequent": {kg: n for n, kg in acc[2]}}


def _count_by(pcoll, label: str, key_fn):
    return (pcoll
            | f"{label}Key" >> beam.Map(lambda x: (key_fn(x), 1))
            | f"{label}Sum" >> beam.CombinePerKey(sum))


def _by_split(counts) -> dict:
    out = {}
    for (split, _), n in counts:
        out[split] = out.get(split, 0) + n
    return out


def _by_labels(counts) -> dict:
    out = {}
    for (_, labels), n in counts:
        out[labels] = out.get(labels, 0) + n
    return out


# -- the transform ---------------------------------------------------------------------

class SelectionResult(NamedTuple):
    selected: beam.PCollection
    excluded: beam.PCollection
    excluded_entities: beam.PCollection
    vocabulary: beam.PCollection
    accounting: beam.PCollection
    statistics: beam.PCollection


class SelectVideos(beam.PTransform):
    """Rules 1-7 of issue 5 on the pipeline root; see the module docstring."""

    def __init__(self, videos_path: str, entities_path: str, ratings_path: Optional[str],
                 config: VocabConfig, output_dir: Optional[str] = None, label=None):
        super().__init__(label)
        for name, value in (("videos_path", videos_path), ("entities_path", entities_path)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"SelectVideos: {name} must be a file path, got {value!r}")
        if ratings_path is not None and (not isinstance(ratings_path, str) or not ratings_path):
            raise ValueError(f"SelectVideos: ratings_path must be a file path or None, "
                             f"got {ratings_path!r}")
        if not isinstance(config, VocabConfig):
            raise TypeError(f"SelectVideos: config must be a vocab.config.VocabConfig, "
                            f"got {type(config).__name__}")
        if output_dir is not None and (not isinstance(output_dir, str) or not output_dir):
            raise ValueError(f"SelectVideos: output_dir must be a folder path or None, "
                             f"got {output_dir!r}")
        self.videos_path = videos_path
        self.entities_path = entities_path
        self.ratings_path = ratings_path
        self.config = config
        self.output_dir = output_dir

    def _check_inputs(self):
        """Fail before the job starts if an input file or a required column is missing."""
        if not fs.exists(self.videos_path):
            raise FileNotFoundError(
                f"manifest {self.videos_path!r} does not exist: pass --videos with a CSV or "
                f"JSONL manifest ({','.join(MANIFEST_COLUMNS)})")
        catalog_io.check_header(self.entities_path, "entities", ("kg_id",), "--entities")
        if self.ratings_path is not None:
            catalog_io.check_header(self.ratings_path, "ratings", catalog_io.RATING_COLUMNS,
                                    "--ratings")

    def expand(self, pbegin):
        if not isinstance(pbegin, beam.pvalue.PBegin):
            raise TypeError("SelectVideos reads its inputs itself: apply it to the pipeline "
                            "root (`pipeline | SelectVideos(...)`)")
        self._check_inputs()
        cfg = self.config
        p = pbegin.pipeline

        # Entities: rules 1-2.
        entities = (p
                    | "EntitiesPath" >> beam.Create([self.entities_path])
                    | "ReadEntities" >> beam.FlatMap(catalog_io.read_entities)
                    | "KeyEntities" >> beam.Map(lambda e: (e.kg_id, e)))
        joined = {"entity": entities}
        if self.ratings_path is not None:
            joined["mean"] = (p
                              | "RatingsPath" >> beam.Create([self.ratings_path])
                              | "ReadRatings" >> beam.FlatMap(catalog_io.read_ratings)
                              | "MeanRating" >> beam.CombinePerKey(MeanRatingFn()))
        entity_out = (joined
                      | "JoinRatings" >> beam.CoGroupByKey()
                      | "ApplyEntityRules" >> beam.ParDo(
                          _ApplyEntityRules(cfg, self.ratings_path is not None))
                      .with_output_types(Tuple[str, Any]).with_outputs(
                              _ApplyEntityRules.EXCLUDED, _ApplyEntityRules.STATUS,
                              main="visual"))
        visual = entity_out.visual
        catalog = AsDict(entity_out[_ApplyEntityRules.STATUS])

        # Videos: duplicates and rule 3.
        keyed = (p
                 | "ManifestPath" >> beam.Create([self.videos_path])
                 | "ReadManifest" >> beam.ParDo(_ReadManifest())
                 .with_output_types(Tuple[str, Any]).with_outputs(
                     _ReadManifest.NO_ID, main="rows"))
        video_out = (keyed.rows
                     | "GroupByVideoId" >> beam.GroupByKey()
                     | "ApplyVideoRules" >> beam.ParDo(_ApplyVideoRules(cfg), catalog)
                     .with_outputs(_ApplyVideoRules.EXCLUDED, _ApplyVideoRules.UNKNOWN,
                                   main="candidates"))
        candidates = video_out.candidates
        excluded_parts = [keyed[_ReadManifest.NO_ID], video_out[_ApplyVideoRules.EXCLUDED]]

        # Rule 4.
        if cfg.sample_size is not None:
            seed = cfg.seed
            keys = candidates | "SampleKey" >> beam.Map(lambda c: rules.sample_key(c[0], seed))
            boundary = (keys
                        | "HashHistogram" >> beam.CombineGlobally(HashHistogramFn())
                        | "FindBoundary" >> beam.Map(_boundary, cfg.sample_size))
            threshold = (keys
                         | "BoundaryBucket" >> beam.Filter(_in_boundary_bucket,
                                                           AsSingleton(boundary))
                         | "GatherBoundary" >> beam.combiners.ToList()
                         | "Threshold" >> beam.Map(_threshold, AsSingleton(boundary)))
            sampled_out = candidates | "ApplySampling" >> beam.ParDo(
                _ApplySampling(seed), AsSingleton(boundary), AsSingleton(threshold)
            ).with_outputs(_ApplySampling.NOT_SAMPLED, main="sampled")
            sampled = sampled_out.sampled
            excluded_parts.append(sampled_out[_ApplySampling.NOT_SAMPLED])
        else:
            sampled = candidates

        # Rule 5: count sampled videos per entity; keep the frequent ones.
        counts = (sampled
                  | "EntityMentions" >> beam.FlatMap(lambda c: ((kg, 1) for kg in c[4]))
                  | "VideosPerEntity" >> beam.CombinePerKey(sum))
        rare_out = ({"info": visual, "count": counts}
                    | "JoinCounts" >> beam.CoGroupByKey()
                    | "FilterRareEntities" >> beam.ParDo(
                        _FilterRareEntities(cfg.min_videos_per_entity))
                    .with_output_types(Tuple[str, Any]).with_outputs(
                            _FilterRareEntities.EXCLUDED, main="kept"))
        kept = rare_out.kept

        # Rule 6 (the vocabulary is small: one list), then rule 7 per video.
        index = (kept
                 | "GatherKept" >> beam.combiners.ToList()
                 | "BuildIndex" >> beam.Map(_build_index))
        split_out = sampled | "AssignSplit" >> beam.ParDo(
            _AssignSplit(cfg), AsSingleton(index)).with_outputs(
                _AssignSplit.EXCLUDED, _AssignSplit.TRAIN_LABEL, _AssignSplit.TRAIN_VERTICAL,
                main="selected")
        selected = split_out.selected
        excluded_parts.append(split_out[_AssignSplit.EXCLUDED])
        train_counts = (split_out[_AssignSplit.TRAIN_LABEL]
                        | "TrainVideosPerEntity" >> beam.CombinePerKey(sum))
        train_verticals = (split_out[_AssignSplit.TRAIN_VERTICAL]
                           | "TrainVideosPerVertical" >> beam.CombinePerKey(sum))
        vocabulary = kept | "VocabularyRows" >> beam.Map(
            _vocabulary_row, AsSingleton(index), AsDict(train_counts))

        excluded = tuple(excluded_parts) | "AllExcluded" >> beam.Flatten()
        excluded_entities = ((entity_out[_ApplyEntityRules.EXCLUDED],
                              rare_out[_FilterRareEntities.EXCLUDED])
                             | "AllExcludedEntities" >> beam.Flatten())

        # Accounting and statistics (small aggregates, one dict each).
        excluded_counts = _count_by(excluded, "ExcludedByReason", lambda e: e.reason)
        # One count per (split, number of labels) gives both split sizes and the
        # labels-per-video histogram in one pass over the selected videos.
        split_labels = AsList(_count_by(selected, "SelectedBySplitAndLabels",
                                        lambda s: (s.split, len(s.labels))))
        entity_counts = _count_by(excluded_entities, "ExcludedEntitiesByReason",
                                  lambda e: e["reason"])
        catalog_size = entities | "CountCatalog" >> beam.combiners.Count.Globally()
        vocab_size = kept | "CountVocabulary" >> beam.combiners.Count.Globally()
        unknown = (video_out[_ApplyVideoRules.UNKNOWN]
                   | "UnknownMentions" >> beam.CombinePerKey(sum)
                   | "SummarizeUnknown" >> beam.CombineGlobally(UnknownEntitiesFn()))
        inputs = {"videos": self.videos_path, "entities": self.entities_path,
                  "ratings": self.ratings_path}
        accounting = (p
                      | "AccountingSeed" >> beam.Create([None])
                      | "Accounting" >> beam.Map(
                          lambda _, exc, spl, ent, cat, voc, unk: stats.accounting(
                              cfg, exc, _by_split(spl), ent, cat, voc, unk, inputs),
                          AsDict(excluded_counts), split_labels, AsDict(entity_counts),
                          AsSingleton(catalog_size), AsSingleton(vocab_size),
                          AsSingleton(unknown)))
        statistics = (p
                      | "StatisticsSeed" >> beam.Create([None])
                      | "Statistics" >> beam.Map(
                          lambda _, voc, tv, spl: stats.statistics(
                              voc, tv, _by_labels(spl), _by_split(spl)),
                          AsList(vocabulary), AsDict(train_verticals), split_labels))

        result = SelectionResult(selected, excluded, excluded_entities, vocabulary,
                                 accounting, statistics)
        if self.output_dir is not None:
            _ = result | "WriteVocabOutputs" >> WriteVocabOutputs(self.output_dir)
        return result
