"""Neuron: one neuron's average precision for every relation and language, where it fires most, and what it
costs each relation switched off alone (the run's single-neuron screen)."""
import altair as alt
import pandas as pd
import streamlit as st

from core.manifest import neuron_space
from core.share_state import format_neuron, parse_neuron, pick_one
from ui.charts import CONDITION_COLORS, RANDOM_SET_MARKS, label_axis, row_step
from ui.output import copy_link, download, guarded, notice
from ui.run import start_page
from ui.state import ViewState
from ui.statistics import CRITICAL_HERE

run_name, store = start_page("Neuron inspector")
m = store.manifest
space = neuron_space(m)
state = ViewState("neuron")
p, parsed = state.url, state.parsed
ident_lang = m.options.get("identification_language", "en")
default = "0"
try:
    top = store.top_neurons(store.relations[0], ident_lang, 1)
    default = str(int(top.neuron.iloc[0])) if len(top) else "0"
except Exception:  # a missing scores table is reported below
    pass
raw = p.get("neuron") or default
try:
    neuron = parse_neuron(raw, space)
except ValueError as exc:
    parsed.note(f"{exc}; showing neuron {format_neuron(space.neuron(int(default)))}.")
    neuron = space.neuron(int(default))
lang0 = pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                 parsed, "language")
state.show_notices()

c1, c2 = st.columns([3, 2])
text = c1.text_input("Neuron (layer.module.index or flat id)", max_chars=64,
                     key=state.bind("neuron", format_neuron(neuron)))
try:
    neuron = parse_neuron(text, space)
except ValueError as exc:
    notice(f"{exc}; still showing {format_neuron(neuron)}.")
lang = c2.selectbox("Language of the top prompts", store.languages,
                    key=state.bind("lang", lang0, store.languages.__contains__))
state.publish(dict(neuron=format_neuron(neuron), lang=lang))
flat = space.flat_id(neuron)
st.caption(f"Neuron **{neuron}**, flat id {flat:,} of {space.total:,} ({m.neurons['definition']} definition).")


TABLE_ROW_PX = 35  # st.dataframe's row height: every relation in view, no inner scroll
# What the single-neuron screen found for a relation, and its bar's colour.
ALONE_STATUS = {"critical": RANDOM_SET_MARKS[CRITICAL_HERE][0], "evaluated exactly, not critical": "#ff7f0e",
                "screen only": CONDITION_COLORS["random"]}


def critical_badge():
    """First on the page: a neuron that alone breaks a relation changes how every other figure here reads."""
    if not store.available("single_neuron"):
        return
    alone = store.single_neuron_effects(flat)
    critical = alone[alone.critical]
    if len(critical):
        notice("Critical neuron: switched off alone, it costs " + "; ".join(
            f"{r.relation} {r.drop_points:.1f} points ({r.base_accuracy:.1%} to {r.accuracy:.1%} on {r.prompts} "
            f"prompts, {r.language})" for r in critical.itertuples()) + ".", "warning", icon=":material/bolt:")


def alone_section():
    st.subheader("Switched off alone")
    if not store.available("single_neuron"):
        st.caption("This run has no single-neuron screen (made with --no-critical, or before the screen existed).")
        return
    alone = store.single_neuron_effects(flat)
    if alone.empty:
        st.caption(f"This neuron was not in the run's single-neuron screen: a model of more than "
                   f"{m.options.get('critical_neurons', 0):,} neurons screens every relation's top-k and a uniform "
                   "sample of the rest.")
        return
    st.caption(f"The screen switches the neuron off alone on {int(alone.sample_prompts.max())} correctly answered "
               f"evaluation prompts per relation ({', '.join(sorted(set(alone.language)))}, trained templates); a "
               "relation where it flips a first token, or lowers the gold first token's log-probability by 0.5 nats "
               "on average, is evaluated exactly on all its prompts. Critical: the exact drop is at least "
               f"{store.critical_threshold:g} accuracy points.")
    alone = alone.assign(status=[
        "critical" if c else "evaluated exactly, not critical" if n > 0 else "screen only"
        for c, n in zip(alone.critical, alone.prompts)])
    statuses = [s for s in ALONE_STATUS if s in set(alone.status)]
    chart = alt.Chart(alone).mark_bar().encode(
        y=alt.Y("relation:N", title=None, axis=label_axis()),
        x=alt.X("sample_first_lp_drop:Q", title="gold first-token log-prob drop on the screen's prompts (nats)",
                scale=alt.Scale(nice=False)),  # a "nice" domain stretches to -0.4 for a drop of -0.000001
        color=alt.Color("status:N", title=None, sort=statuses, legend=alt.Legend(orient="top", labelLimit=0),
                        scale=alt.Scale(domain=statuses, range=[ALONE_STATUS[s] for s in statuses])),
        tooltip=["relation", "language", "status",
                 alt.Tooltip("sample_broken:Q", title="screen: first tokens flipped"),
                 alt.Tooltip("sample_prompts:Q", title="screen: prompts"),
                 alt.Tooltip("sample_first_lp_drop:Q", format=".3f", title="screen: first-token log-prob drop"),
                 alt.Tooltip("drop_points:Q", format=".1f", title="exact accuracy drop (points)"),
                 alt.Tooltip("prompts:Q", title="exact: prompts")],
    ).properties(height=row_step())
    st.altair_chart(chart, width="stretch")
    evaluated = alone.prompts > 0
    table = pd.DataFrame({
        "relation": alone.relation,
        "critical": alone.critical,
        "flipped": [f"{b} of {n}" for b, n in zip(alone.sample_broken, alone.sample_prompts)],
        "log-prob drop": alone.sample_first_lp_drop,
        "exact drop": [f"{d:.1f}" if e else "not evaluated" for d, e in zip(alone.drop_points, evaluated)],
        "exact accuracy": [f"{b:.1%} → {a:.1%}" if e else "" for b, a, e in zip(alone.base_accuracy, alone.accuracy,
                                                                                evaluated)],
        "prompts": [str(n) if e else "" for n, e in zip(alone.prompts, evaluated)],
    })
    st.dataframe(table, hide_index=True, height=TABLE_ROW_PX * (len(table) + 1) + 3, column_config={
        "relation": st.column_config.TextColumn(pinned=True),
        "flipped": st.column_config.TextColumn(help="Screen: sampled prompts whose first answer token changes"),
        "log-prob drop": st.column_config.NumberColumn(
            format="%.4f", help="Screen: mean drop of the gold first token's log-probability, in nats"),
        "exact drop": st.column_config.TextColumn(
            help="Accuracy points lost on all the relation's evaluation prompts (only where the screen saw an effect)"),
        "exact accuracy": st.column_config.TextColumn(help="Accuracy before → with this neuron off"),
        "prompts": st.column_config.TextColumn(help="Prompts of the exact evaluation")})
    download(alone.drop(columns="status"), f"{run_name}-neuron-{flat}-alone", "alone")


def critical_list_section():
    if not store.available("single_neuron"):
        return
    critical = store.critical_neurons()
    with st.expander(f"Every critical neuron of this run ({critical.neuron.nunique()})", icon=":material/bolt:"):
        if critical.empty:
            st.caption(f"No single neuron costs any relation {store.critical_threshold:g} points or more.")
            return
        st.dataframe(critical.assign(page=[f"./neuron?run={run_name}&neuron={r.layer}.{r.module}.{r['index']}"
                                           for _, r in critical.iterrows()]),
                     hide_index=True, column_config={
                         "page": st.column_config.LinkColumn("neuron page", display_text="open"),
                         "base_accuracy": st.column_config.NumberColumn("baseline", format="percent"),
                         "accuracy": st.column_config.NumberColumn("accuracy alone off", format="percent"),
                         "drop_points": st.column_config.NumberColumn("drop (points)", format="%.1f")})


def profile_section():
    prof = store.neuron_profile(flat)
    st.subheader("Average precision per relation and language")
    chart = alt.Chart(prof).mark_rect().encode(
        x=alt.X("language:N", axis=label_axis()), y=alt.Y("relation:N", title=None, axis=label_axis()),
        color=alt.Color("ap:Q", title="AP", scale=alt.Scale(domain=[0, 1], scheme="purples")),
        tooltip=["relation", "language", alt.Tooltip("ap:Q", format=".3f"), "rank",
                 alt.Tooltip("mean_pos:Q", format=".3f", title="mean on positives"),
                 alt.Tooltip("median_pos:Q", format=".3f", title="median on positives"),
                 alt.Tooltip("mean_neg:Q", format=".3f", title="mean on negatives")],
    ).properties(height=row_step())
    st.altair_chart(chart, width="stretch")
    st.dataframe(prof, hide_index=True)
    download(prof, f"{run_name}-neuron-{flat}", "profile")


def prompts_section():
    st.subheader(f"Identification prompts ({lang}) where it is highest")
    tops = store.neuron_top_prompts(flat, lang)
    st.dataframe(tops, hide_index=True)
    download(tops, f"{run_name}-neuron-{flat}-top-prompts-{lang}", "tops")


guarded(critical_badge)
guarded(profile_section)
guarded(alone_section)
guarded(prompts_section)
guarded(critical_list_section)
copy_link()
