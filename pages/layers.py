"""Layers: where each relation's top-k neurons sit, by layer and module."""
import altair as alt
import streamlit as st

from core.share_state import Parsed, pick_int, pick_one
from pages.common import start_page, copy_link, download, guarded, params, set_params, show_notices

run_name, store = start_page("Layer distribution of relation neurons")
m = store.manifest
p, parsed = params(), Parsed()
ident_lang = m.options.get("identification_language", "en")
k0 = pick_int(p, "k", 1, store.total_neurons, m.k, parsed, "k")
lang0 = pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                 parsed, "language")
unit0 = pick_one(p, "unit", ["count", "share"], "count", parsed, "unit")
show_notices(parsed)

c1, c2, c3 = st.columns([3, 2, 2])
k = c1.number_input(f"k (1–{store.total_neurons:,})", 1, store.total_neurons, k0, step=1)
lang = c2.selectbox("Language", store.languages, index=store.languages.index(lang0))
unit = c3.radio("Show", ["count", "share"], index=["count", "share"].index(unit0), horizontal=True,
                format_func={"count": "counts", "share": "share of the relation's top-k"}.get)
set_params(dict(k=k, lang=lang, unit=unit))


def distribution_section():
    dist = store.layer_distribution(int(k), lang)
    per_layer = dist.groupby(["relation", "layer"], as_index=False).neurons.sum()
    per_layer["share"] = per_layer.neurons / per_layer.groupby("relation").neurons.transform("sum")
    value = "neurons" if unit == "count" else "share"
    st.subheader("Relation × layer")
    chart = alt.Chart(per_layer).mark_rect().encode(
        x=alt.X("layer:O"), y=alt.Y("relation:N", title=None),
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="oranges")),
        tooltip=["relation", "layer", "neurons", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=26 * len(store.relations))
    st.altair_chart(chart, width="stretch")
    download(per_layer, f"{run_name}-layers-k{int(k)}-{lang}", "layers")

    st.subheader("Module mix per layer (all relations)")
    mix = dist.groupby(["layer", "module"], as_index=False).neurons.sum()
    mix["share"] = mix.neurons / mix.groupby("layer").neurons.transform("sum")
    bars = alt.Chart(mix).mark_bar().encode(
        x=alt.X("layer:O"), y=alt.Y(f"{value}:Q", stack="normalize" if unit == "share" else True),
        color="module:N", tooltip=["layer", "module", "neurons", alt.Tooltip("share:Q", format=".1%")])
    st.altair_chart(bars, width="stretch")
    download(mix, f"{run_name}-module-mix-k{int(k)}-{lang}", "mix")


guarded(distribution_section)
copy_link()
