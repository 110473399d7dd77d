"""The explorer's pages: file, title, icon and URL path. app.py builds its navigation from this list and the
server's not-found answer (ui/unknown_paths.py) links to each page, so the two never disagree."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    file: str
    title: str
    icon: str
    url_path: str


PAGES = (
    PageEntry("pages/overview.py", "Overview", ":material/dashboard:", "overview"),
    PageEntry("pages/overlap.py", "Overlap", ":material/grid_on:", "overlap"),
    PageEntry("pages/layers.py", "Layers", ":material/bar_chart:", "layers"),
    PageEntry("pages/neuron.py", "Neuron", ":material/biotech:", "neuron"),
    PageEntry("pages/effects.py", "Effects", ":material/trending_down:", "effects"),
    PageEntry("pages/lab.py", "Lab", ":material/science:", "lab"),
    PageEntry("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
)
HOME = "home"  # the hidden root page, which opens the overview
PAGE_PATHS = frozenset(p.url_path for p in PAGES)
