"""Layers: where each relation's top-k neurons sit, by layer and module."""
import altair as alt
import streamlit as st

from core.layer_distribution import module_mix, per_relation_layer
from core.share_state import pick_int, pick_one
from ui.charts import label_axis, row_step
from ui.output import copy_link, download, guarded
from ui.run import start_page
from ui.state import ViewState

UNITS = {"count": "counts", "share": "share of the relation's top-k"}

run_name, store = start_page("Layer distribution of relation neurons")
m = store.manifest
state = ViewState("layers")
p, parsed = state.url, state.parsed
ident_lang = m.options.get("identification_language", "en")
k0 = pick_int(p, "k", 1, store.total_neurons, m.k, parsed, "k")
lang0 = pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                 parsed, "language")
unit0 = pick_one(p, "unit", list(UNITS), "count", parsed, "unit")
state.show_notices()

c1, c2, c3 = st.columns([3, 2, 2])
k = c1.number_input(f"k (1–{store.total_neurons:,})", 1, store.total_neurons, step=1,
                    key=state.bind("k", k0, lambda v: isinstance(v, int) and 1 <= v <= store.total_neurons))
lang = c2.selectbox("Language", store.languages, key=state.bind("lang", lang0, lambda v: v in store.languages))
unit = c3.radio("Show", list(UNITS), horizontal=True, format_func=UNITS.get,
                key=state.bind("unit", unit0, lambda v: v in UNITS))
state.publish(dict(k=k, lang=lang, unit=unit))


def distribution_section():
    dist = store.layer_distribution(int(k), lang)
    per_layer = per_relation_layer(dist)
    value = "neurons" if unit == "count" else "share"
    st.subheader("Relation × layer")
    chart = alt.Chart(per_layer).mark_rect().encode(
        x=alt.X("layer:O", axis=label_axis()), y=alt.Y("relation:N", title=None, axis=label_axis()),
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="oranges")),
        tooltip=["relation", "layer", "neurons", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=row_step())
    st.altair_chart(chart, width="stretch")
    download(per_layer, f"{run_name}-layers-k{int(k)}-{lang}", "layers")

    st.subheader("Module mix per layer (all relations)")
    mix = module_mix(dist)
    bars = alt.Chart(mix).mark_bar().encode(
        x=alt.X("layer:O"), y=alt.Y(f"{value}:Q", stack="normalize" if unit == "share" else True),
        color="module:N", tooltip=["layer", "module", "neurons", alt.Tooltip("share:Q", format=".1%")])
    st.altair_chart(bars, width="stretch")
    download(mix, f"{run_name}-module-mix-k{int(k)}-{lang}", "mix")


guarded(distribution_section)
copy_link()
