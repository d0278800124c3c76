"""VocabConfig: defaults, flags and validation messages."""
import argparse

import pytest

from yt8m.vocab.config import VocabConfig, config_from_argv


def test_defaults_are_the_papers():
    c = VocabConfig()
    assert (c.type_whitelist, c.type_blacklist) == (None, None)
    assert c.max_mean_rating == 2.5 and c.min_views == 1000
    assert (c.min_duration_s, c.max_duration_s) == (120.0, 500.0)
    assert c.sample_size is None and c.min_videos_per_entity == 200
    assert c.split == (70, 20, 10) and c.seed == 0
    assert c.split_thresholds() == (0.70, 0.90)


def test_flags_round_trip():
    c = config_from_argv(["--type_whitelist", "sport, animal", "--type_blacklist", "album",
                          "--max_mean_rating", "3", "--min_views", "10", "--min_duration_s", "1",
                          "--max_duration_s", "9", "--sample_size", "5",
                          "--min_videos_per_entity", "2", "--split", "80,10,10", "--seed", "4"])
    assert c.type_whitelist == frozenset({"sport", "animal"})
    assert c.type_blacklist == frozenset({"album"})
    assert (c.max_mean_rating, c.min_views, c.min_duration_s, c.max_duration_s) == (3, 10, 1, 9)
    assert (c.sample_size, c.min_videos_per_entity, c.split, c.seed) == (5, 2, (80, 10, 10), 4)
    assert c.to_dict()["type_whitelist"] == ["animal", "sport"]


def test_unknown_flags_left_for_beam():
    parser = VocabConfig.add_arguments(argparse.ArgumentParser())
    ns, rest = parser.parse_known_args(["--seed", "2", "--runner", "DataflowRunner"])
    assert VocabConfig.from_args(ns).seed == 2 and rest == ["--runner", "DataflowRunner"]


@pytest.mark.parametrize("kwargs,message", [
    ({"split": "70,30"}, "3 comma-separated parts"),
    ({"split": "70,20,20"}, "sum to 100"),
    ({"split": "70,x,10"}, "not a number"),
    ({"split": "0,90,10"}, "train split 0%"),
    ({"max_mean_rating": 6}, "[1, 5]"),
    ({"min_views": -1}, "min_views"),
    ({"min_duration_s": 600}, "above --max_duration_s"),
    ({"sample_size": 0}, "sample_size"),
    ({"min_videos_per_entity": 0}, "min_videos_per_entity"),
    ({"type_whitelist": " , "}, "type_whitelist is empty"),
    ({"seed": "x"}, "--seed must be an integer"),
])
def test_validation_errors_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        VocabConfig(**kwargs)
