"""Altair settings every page's charts share: axes that draw every label in full, rows tall enough to read,
and one colour per ablation condition across pages."""
import altair as alt

from ui.statistics import CRITICAL_ELSEWHERE, CRITICAL_HERE, NO_CRITICAL, UNSCREENED

ROW_STEP = 28  # pixels per heatmap row: 12 relations need 336 px, and every label fits its row

# The same condition has the same colour on every page.
CONDITION_COLORS = {
    "original": "#4c78a8",  # the unablated model
    "random": "#9d9d9d",  # random neurons of the same count
    "random_noncritical": "#cfcfcf",  # random neurons of the same count, none of them critical: a paler grey
    "relation_off": "#e45756",  # the relation's own top-k
    "ablated": "#e45756",
    "baseline": "#4c78a8",
}
CONDITION_NAMES = {
    "original": "original", "random": "random k off", "random_noncritical": "random k off, no critical neuron",
    "relation_off": "relation's top-k off",
    "baseline": "baseline", "ablated": "top-k off",
}

# A random set's dot: plain, or one that holds a neuron that alone breaks a relation (ui.statistics). A set with
# a critical neuron of the dot's own relation is the one a reader must find among ten dots: the largest.
RANDOM_SET_MARKS = {  # kind of set: (colour, shape, size)
    NO_CRITICAL: ("black", "circle", 24),
    CRITICAL_HERE: ("#d62728", "diamond", 120),
    CRITICAL_ELSEWHERE: ("#ff7f0e", "triangle-up", 50),
    UNSCREENED: ("black", "circle", 24),
}


def label_axis(angle: int = 0, title: str | None = None) -> alt.Axis:
    """An axis that shows every category label in full (no dropped or truncated labels)."""
    return alt.Axis(labelLimit=0, labelOverlap=False, labelAngle=angle, title=title,
                    labelAlign="right" if angle else alt.Undefined)


def row_step() -> alt.Step:
    """A heatmap's height as pixels per row: Streamlit fits a chart's width to the page but not its height, so a
    fixed height would squeeze twelve rows until their labels are dropped."""
    return alt.Step(ROW_STEP)
