"""The 24 top-level verticals of YouTube-8M (paper section 3.4, Table 1, Figure 6).

The catalog gives each entity up to three verticals; the explorer's front page
lists these 24 in this order (the paper's), each with its entity and video
counts, and gathers any other vertical name a catalog uses under its own row
after them.
"""
from __future__ import annotations

TOP_LEVEL = (
    "Arts & Entertainment", "Autos & Vehicles", "Beauty & Fitness", "Books & Literature",
    "Business & Industrial", "Computers & Electronics", "Finance", "Food & Drink", "Games",
    "Health", "Hobbies & Leisure", "Home & Garden", "Internet & Telecom", "Jobs & Education",
    "Law & Government", "News", "People & Society", "Pets & Animals", "Real Estate",
    "Reference", "Science", "Shopping", "Sports", "Travel",
)
assert len(TOP_LEVEL) == 24

UNASSIGNED = "(no vertical)"


def ordered(names) -> list[str]:
    """The 24 verticals in the paper's order, then any other names found, sorted."""
    extra = sorted(set(names) - set(TOP_LEVEL))
    return list(TOP_LEVEL) + extra
