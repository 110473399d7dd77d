"""Effects: the paper's ablation figures from the precomputed effects."""
import altair as alt
import pandas as pd
import streamlit as st

from core.metrics import cumulativity_from_table, intra_relation, sweep_curves
from core.share_state import Parsed, pick_int, pick_one
from pages.common import start_page, copy_link, download, guarded, params, set_params, show_notices

run_name, store = start_page("Effects of switching relation neurons off")
m = store.manifest
sweep = list(m.k_sweep)
p, parsed = params(), Parsed()
k0 = pick_int(p, "k", min(sweep), max(sweep), m.k, parsed, "k")
if k0 not in sweep:
    nearest = min(sweep, key=lambda v: abs(v - k0))
    parsed.note(f"k {k0:,} was not precomputed; showing the nearest precomputed k, {nearest:,}.")
    k0 = nearest
lang0 = pick_one(p, "lang", store.languages, "en" if "en" in store.languages else store.languages[0], parsed, "language")
rel0 = pick_one(p, "rel", store.relations, store.relations[0], parsed, "relation")
show_notices(parsed)

c1, c2, c3 = st.columns(3)
k = c1.select_slider("k (precomputed)", options=sweep, value=k0)
lang = c2.selectbox("Language", store.languages, index=store.languages.index(lang0))
rel = c3.selectbox("Relation (for the sweep)", store.relations, index=store.relations.index(rel0))
set_params(dict(k=k, lang=lang, rel=rel))


@st.cache_data(show_spinner="Summarising the effects…", max_entries=16)
def table_for(run_path: str, template_kind: str) -> pd.DataFrame:
    return store.ablation_summary(template_kind)


def intra_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Intra-relation: accuracy with the relation's own top-{k:,} off ({lang})")
    bars = intra_relation(table, k, lang)
    long = bars.melt(id_vars=["relation", "random_low", "random_high"], value_vars=["original", "random", "relation_off"],
                     var_name="condition", value_name="accuracy")
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("condition:N", title=None, sort=["original", "random", "relation_off"]),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])), color="condition:N",
        column=alt.Column("relation:N", title=None, header=alt.Header(labelAngle=-45, labelAlign="right")),
        tooltip=["relation", "condition", alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("random_low:Q", format=".1%", title="random, lowest seed"),
                 alt.Tooltip("random_high:Q", format=".1%", title="random, highest seed")],
    ).properties(width=42, height=220)
    st.altair_chart(chart)
    download(bars, f"{run_name}-intra-k{k}-{lang}", "intra")

    st.subheader(f"Inter-relation: relative drop with one relation's top-{k:,} off ({lang})")
    st.caption("Rows: evaluated relation; columns: relation whose neurons are off. Negative = the relation improves.")
    inter = table[(table.kind == "top") & (table.k == k) & (table.language == lang)]
    heat = alt.Chart(inter).mark_rect().encode(
        x=alt.X("ablated:N", title="neurons off"), y=alt.Y("relation:N", title="evaluated"),
        color=alt.Color("relative_drop:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True)),
        tooltip=["relation", "ablated", alt.Tooltip("relative_drop:Q", format=".1%"),
                 alt.Tooltip("base_accuracy:Q", format=".1%"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("first_lp_drop:Q", format=".3f", title="gold first-token log-prob drop")],
    ).properties(height=26 * len(store.relations))
    st.altair_chart(heat, width="stretch")
    download(inter, f"{run_name}-inter-k{k}-{lang}", "inter")


def sweep_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Accuracy vs k: {rel} and the mean of the other relations ({lang})")
    curves = sweep_curves(table, rel, lang)
    chart = alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("k:Q", scale=alt.Scale(type="log")), y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color="series:N", tooltip=["series", "k", alt.Tooltip("accuracy:Q", format=".1%")])
    st.altair_chart(chart, width="stretch")
    download(curves, f"{run_name}-sweep-{rel}-{lang}", "sweep")


def cumulativity_section():
    st.subheader("Cumulativity per k range")
    st.caption("Of the prompts right with the top-k₁ off but wrong with the top-k₂ off, the share NOT explained by the "
               "ranks k₁..k₂ alone (high = the neurons act jointly). Macro over relations, micro over prompts.")
    table = cumulativity_from_table(store.effect_rows(["top", "range"]), sweep, lang)
    st.dataframe(table, hide_index=True)
    download(table, f"{run_name}-cumulativity-{lang}", "cum")


def multilingual_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Multilingual: English-identified top-{k:,} off, every language")
    own = table[(table.kind == "top") & (table.k == k) & (table.ablated == table.relation)]
    long = own.melt(id_vars=["relation", "language"], value_vars=["base_accuracy", "accuracy"],
                    var_name="condition", value_name="acc")
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("condition:N", title=None), y=alt.Y("acc:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        color="condition:N", column=alt.Column("language:N"), row=alt.Row("relation:N", title=None),
        tooltip=["relation", "language", "condition", alt.Tooltip("acc:Q", format=".1%")],
    ).properties(width=60, height=50)
    st.altair_chart(chart)
    download(own, f"{run_name}-multilingual-k{k}", "multi")


def heldout_section():
    table = table_for(str(store.run_dir), "heldout")
    st.subheader(f"Held-out templates: intra-relation accuracy with top-{k:,} off ({lang})")
    bars = intra_relation(table, k, lang)
    st.dataframe(bars, hide_index=True)
    download(bars, f"{run_name}-heldout-k{k}-{lang}", "held")


tabs = st.tabs(["Intra & inter", "Sweep", "Cumulativity", "Multilingual", "Held-out templates"])
for tab, section in zip(tabs, [intra_section, sweep_section, cumulativity_section, multilingual_section, heldout_section]):
    with tab:
        guarded(section)
copy_link()
