"""Effects: the paper's ablation figures from the precomputed effects."""
import altair as alt
import pandas as pd
import streamlit as st

from core.metrics import (cumulativity_from_table, inter_relation, intra_relation, multilingual,
                          random_seed_accuracies, sweep_curves)
from core.share_state import pick_one, pick_precomputed
from ui.charts import CONDITION_COLORS, CONDITION_NAMES, label_axis, row_step
from ui.output import copy_link, download, guarded
from ui.run import start_page
from ui.state import ViewState

TABS = {"intra": "Intra & inter", "sweep": "Sweep", "cumulativity": "Cumulativity", "multilingual": "Multilingual",
        "heldout": "Held-out templates"}
INTRA_CONDITIONS = ["original", "random", "relation_off"]

run_name, store = start_page("Effects of switching relation neurons off")
m = store.manifest
sweep = list(m.k_sweep)
state = ViewState("effects")
p, parsed = state.url, state.parsed
k0 = pick_precomputed(p, "k", sweep, m.k, parsed, "k")
lang0 = pick_one(p, "lang", store.languages, "en" if "en" in store.languages else store.languages[0], parsed, "language")
rel0 = pick_one(p, "rel", store.relations, store.relations[0], parsed, "relation")
tab0 = pick_one(p, "tab", list(TABS), "intra", parsed, "tab")
state.show_notices()

c1, c2, c3 = st.columns(3)
k = c1.select_slider("k (precomputed)", options=sweep, key=state.bind("k", k0, sweep.__contains__))
lang = c2.selectbox("Language", store.languages, key=state.bind("lang", lang0, store.languages.__contains__))
rel = c3.selectbox("Relation (for the sweep)", store.relations,
                   key=state.bind("rel", rel0, store.relations.__contains__))
label_to_tab = {label: name for name, label in TABS.items()}
tabs = st.tabs(list(TABS.values()), on_change="rerun",
               key=state.bind("tab", TABS[tab0], label_to_tab.__contains__))
active = label_to_tab.get(st.session_state[state.key("tab")], "intra")
state.publish(dict(k=k, lang=lang, rel=rel, tab=active))


@st.cache_data(show_spinner="Summarising the effects…", max_entries=16)
def table_for(run_path: str, template_kind: str) -> pd.DataFrame:
    return store.ablation_summary(template_kind)


def intra_chart(bars: pd.DataFrame, seeds: pd.DataFrame) -> alt.LayerChart:
    """Grouped bars per relation (original, random mean, own top-k off), every random seed as a dot and the
    seeds' range as an error bar."""
    long = bars.melt(id_vars=["relation"], value_vars=INTRA_CONDITIONS, var_name="condition", value_name="accuracy")
    long["condition_name"] = long.condition.map(CONDITION_NAMES)
    names = [CONDITION_NAMES[c] for c in INTRA_CONDITIONS]
    x = alt.X("relation:N", title=None, axis=label_axis(angle=-35))
    offset = alt.XOffset("condition_name:N", sort=names, scale=alt.Scale(domain=names))
    color = alt.Color("condition_name:N", title="condition", sort=names,
                      scale=alt.Scale(domain=names, range=[CONDITION_COLORS[c] for c in INTRA_CONDITIONS]),
                      legend=alt.Legend(orient="top", labelLimit=0))
    y = alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    bar = alt.Chart(long).mark_bar().encode(
        x=x, xOffset=offset, y=y, color=color,
        tooltip=["relation", alt.Tooltip("condition_name:N", title="condition"),
                 alt.Tooltip("accuracy:Q", format=".1%")])
    seed_points = seeds.assign(condition_name=CONDITION_NAMES["random"])
    dots = alt.Chart(seed_points).mark_circle(size=22, color="black", opacity=0.7).encode(
        x=x, xOffset=offset, y=y,
        tooltip=["relation", alt.Tooltip("seed:Q", title="random seed"), alt.Tooltip("accuracy:Q", format=".1%")])
    ranges = bars.assign(condition_name=CONDITION_NAMES["random"])
    rule = alt.Chart(ranges).mark_rule(color="black").encode(
        x=x, xOffset=offset, y=alt.Y("random_low:Q"), y2="random_high:Q",
        tooltip=["relation", alt.Tooltip("random_low:Q", format=".1%", title="random, lowest seed"),
                 alt.Tooltip("random_high:Q", format=".1%", title="random, highest seed")])
    return bar + rule + dots


def intra_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Intra-relation: accuracy with the relation's own top-{k:,} off ({lang})")
    bars = intra_relation(table, k, lang)
    seeds = random_seed_accuracies(table, k, lang)
    st.altair_chart(intra_chart(bars, seeds), width="stretch", height=380)
    st.caption(f"Grey bar: mean over {seeds.seed.nunique()} random sets of {k:,} neurons; each dot is one random "
               "set, the black line spans the lowest to the highest.")
    download(bars, f"{run_name}-intra-k{k}-{lang}", "intra")

    st.subheader(f"Inter-relation: relative drop with one relation's top-{k:,} off ({lang})")
    st.caption("Rows: evaluated relation; columns: relation whose neurons are off. Negative = the relation improves.")
    inter = inter_relation(table, k, lang)
    heat = alt.Chart(inter).mark_rect().encode(
        x=alt.X("ablated:N", title="neurons off", axis=label_axis(angle=-35)),
        y=alt.Y("relation:N", title="evaluated", axis=label_axis()),
        color=alt.Color("relative_drop:Q", title="relative drop",
                        scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)),
        tooltip=[alt.Tooltip("relation:N", title="evaluated"), alt.Tooltip("ablated:N", title="neurons off"),
                 alt.Tooltip("relative_drop:Q", format=".1%"),
                 alt.Tooltip("base_accuracy:Q", format=".1%", title="original accuracy"),
                 alt.Tooltip("accuracy:Q", format=".1%", title="accuracy with the neurons off"),
                 alt.Tooltip("first_lp_drop:Q", format=".3f", title="gold first-token log-prob drop")],
    ).properties(height=row_step())
    st.altair_chart(heat, width="stretch")
    download(inter, f"{run_name}-inter-k{k}-{lang}", "inter")


def sweep_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Accuracy vs k: {rel} and the mean of the other relations ({lang})")
    curves = sweep_curves(table, rel, lang)
    series = [rel, "other relations (mean)", f"{rel}, random sets"]
    chart = alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("k:Q", scale=alt.Scale(type="log"), title="k (neurons off, log scale)"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("series:N", sort=series, scale=alt.Scale(domain=series, range=[
            CONDITION_COLORS["relation_off"], CONDITION_COLORS["original"], CONDITION_COLORS["random"]]),
            legend=alt.Legend(orient="top", labelLimit=0, title=None)),
        strokeDash=alt.StrokeDash("series:N", sort=series, legend=None,
                                  scale=alt.Scale(domain=series, range=[[1, 0], [1, 0], [4, 3]])),
        tooltip=["series", "k", alt.Tooltip("accuracy:Q", format=".1%")])
    st.altair_chart(chart, width="stretch", height=360)
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
    ident = m.options.get("identification_language", "en")
    st.subheader(f"Multilingual: the top-{k:,} identified in {ident} switched off, every language")
    long = multilingual(table, k)
    names = ["original", "relation's top-k off"]
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("language:N", title=None, axis=label_axis()),
        xOffset=alt.XOffset("condition:N", sort=names),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("condition:N", sort=names, title=None, legend=alt.Legend(orient="top", labelLimit=0),
                        scale=alt.Scale(domain=names, range=[CONDITION_COLORS["original"],
                                                             CONDITION_COLORS["relation_off"]])),
        tooltip=["relation", "language", "condition", alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(width=150, height=120).facet(
        facet=alt.Facet("relation:N", title=None, header=alt.Header(labelLimit=0, labelFontSize=12)), columns=4)
    st.altair_chart(chart)
    download(long, f"{run_name}-multilingual-k{k}", "multi")


def heldout_section():
    table = table_for(str(store.run_dir), "heldout")
    st.subheader(f"Held-out templates: intra-relation accuracy with top-{k:,} off ({lang})")
    st.caption("Templates the model was not trained on: here the original accuracy is below 100%, so an improvement "
               "can show.")
    bars = intra_relation(table, k, lang)
    st.altair_chart(intra_chart(bars, random_seed_accuracies(table, k, lang)), width="stretch", height=380)
    st.dataframe(bars, hide_index=True)
    download(bars, f"{run_name}-heldout-k{k}-{lang}", "held")


SECTIONS = {"intra": intra_section, "sweep": sweep_section, "cumulativity": cumulativity_section,
            "multilingual": multilingual_section, "heldout": heldout_section}
for tab, name in zip(tabs, TABS):
    if tab.open is False:  # only the open tab is computed and drawn
        continue
    with tab:
        guarded(SECTIONS[name])
copy_link()
