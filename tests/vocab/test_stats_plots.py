"""vocab/stats.py's plots: Figure 6's panels keep their labels to themselves."""
from __future__ import annotations

import itertools

import pytest

from yt8m.explorer.verticals import TOP_LEVEL
from yt8m.vocab.stats import figure6, plot_all


def stats(n):
    names = list(TOP_LEVEL[:n])
    return {"entities_per_vertical": {v: 100 - 3 * i for i, v in enumerate(names)},
            "train_videos_per_vertical": {v: 10 ** (1 + (i % 5)) for i, v in
                                          enumerate(reversed(names))},
            "videos_per_entity_by_rank": [5, 3, 1], "split_sizes": {"train": 7, "validate": 2,
                                                                    "test": 1},
            "specificity": {"coarse": 1, "medium": 1, "fine": 1}}


@pytest.mark.parametrize("n", [1, 7, 24])
def test_figure6_labels_do_not_overlap_the_other_panel(n):
    import matplotlib.pyplot as plt
    fig = figure6(stats(n))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    a1, a2 = fig.axes
    left_panel = a1.get_window_extent(renderer)
    right_labels = [t.get_window_extent(renderer) for t in a2.get_yticklabels() if t.get_text()]
    left_labels = [t.get_window_extent(renderer) for t in a1.get_yticklabels() if t.get_text()]
    assert len(right_labels) == n and len(left_labels) == n
    for box in right_labels:
        assert box.x0 >= left_panel.x1, "a right-panel label runs into the left panel"
    # Labels of one panel do not overlap each other either.
    for boxes in (left_labels, right_labels):
        for b1, b2 in itertools.combinations(boxes, 2):
            assert not b1.overlaps(b2)
    plt.close(fig)


def test_plot_all_still_writes_every_figure():
    out = plot_all(stats(24))
    assert sorted(out) == ["figure4b_specificity.png", "figure5_videos_per_entity.png",
                           "figure6_verticals.png", "table2_split_sizes.png"]
    assert all(v[:4] == b"\x89PNG" for v in out.values())
