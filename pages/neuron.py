"""Neuron: one neuron's average precision for every relation and language, and where it fires most."""
import altair as alt
import streamlit as st

from core.manifest import neuron_space
from core.share_state import format_neuron, parse_neuron, pick_one
from ui.charts import label_axis, row_step
from ui.output import copy_link, download, guarded, notice
from ui.run import start_page
from ui.state import ViewState

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


guarded(profile_section)
guarded(prompts_section)
copy_link()
