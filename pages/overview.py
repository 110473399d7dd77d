"""Overview: what was run, and how well the model knows each relation in each language."""
import altair as alt
import streamlit as st

from core.manifest import module_sizes
from core.share_state import pick_one
from ui.charts import label_axis, row_step
from ui.output import copy_link, download, guarded
from ui.run import start_page
from ui.state import ViewState

TEMPLATE_KINDS = {"train": "trained templates", "heldout": "held-out templates"}

run_name, store = start_page("Overview")
m = store.manifest
state = ViewState("overview")
kind0 = pick_one(state.url, "tk", list(TEMPLATE_KINDS), "train", state.parsed, "template kind")
state.show_notices()

cols = st.columns(4)
cols[0].metric("Model", m.model["model_type"], help=m.model["source"])
cols[1].metric("Neurons", f"{m.neurons['total']:,}", help=f"definition: {m.neurons['definition']}")
cols[2].metric("Relations", len(store.relations))
cols[3].metric("Languages", len(store.languages), help=", ".join(store.languages))
st.caption(f"Neuron definition **{m.neurons['definition']}**: " + ", ".join(
    f"{name} x{size:,} per layer" for name, size in module_sizes(m)) + f" over {m.neurons['num_layers']} layers.")

kind = st.radio("Templates", list(TEMPLATE_KINDS), horizontal=True, format_func=TEMPLATE_KINDS.get,
                key=state.bind("tk", kind0, lambda v: v in TEMPLATE_KINDS))
state.publish({"tk": kind})


def accuracy_section():
    acc = store.baseline_accuracy(template_kind=kind)
    st.subheader("Baseline accuracy on the evaluation prompts (greedy, 2 tokens, prefix match)")
    chart = alt.Chart(acc).mark_rect().encode(
        x=alt.X("language:N", title="language", axis=label_axis()), y=alt.Y("relation:N", title=None, axis=label_axis()),
        color=alt.Color("accuracy:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["relation", "language", alt.Tooltip("accuracy:Q", format=".1%"), "prompts"],
    ).properties(height=row_step())
    # Dark text on the light end of viridis, white on the dark end: readable on every cell.
    text = chart.mark_text(fontSize=12, fontWeight="bold").encode(
        text=alt.Text("accuracy:Q", format=".0%"),
        color=alt.condition("datum.accuracy > 0.6", alt.value("black"), alt.value("white")))
    st.altair_chart(chart + text, width="stretch")
    download(acc, f"{run_name}-baseline-accuracy-{kind}", "acc")


def counts_section():
    counts = store.prompt_counts()
    st.subheader("Prompts")
    table = store.prompt_count_table()
    st.dataframe(table)
    download(counts, f"{run_name}-prompt-counts", "counts")


guarded(accuracy_section)
guarded(counts_section)
copy_link()
