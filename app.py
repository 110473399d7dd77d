"""Relation Neuron Explorer: the embedded demo model's next-token readout (the explorer pages come next)."""
import altair as alt
import pandas as pd
import streamlit as st

from core.demo import DEMO_MODEL_DIR, MAX_NEW_TOKENS, MAX_PROMPT_CHARS, read_prompt
from core.loading import ModelLoadError, load_causal_lm

st.set_page_config(page_title="Relation Neuron Explorer", layout="wide")


@st.cache_resource(show_spinner="Loading the demo model…")
def demo_model():
    return load_causal_lm(DEMO_MODEL_DIR)


st.title("Relation Neuron Explorer")
st.caption(
    "Reproduces *On Relation-Specific Neurons in Large Language Models* (Liu et al. 2025) "
    "on a small Llama-architecture model trained by this project on its own multilingual facts."
)
try:
    lm = demo_model()
except ModelLoadError as exc:
    st.error(f"The demo model could not be loaded: {exc}")
    st.stop()

prompt = st.text_input(
    f"Prompt (up to {MAX_PROMPT_CHARS:,} characters)",
    value=st.query_params.get("prompt", "The father of Bouzei Hulir is"),
    max_chars=MAX_PROMPT_CHARS,
)
st.query_params["prompt"] = prompt
try:
    readout = read_prompt(lm, prompt, top=10, new_tokens=MAX_NEW_TOKENS)
except ValueError as exc:
    st.info(str(exc))
    st.stop()

left, right = st.columns(2)
with left:
    st.subheader("Next token")
    table = pd.DataFrame(readout.next_tokens, columns=["token_id", "token", "probability"])
    chart = (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("token:N", sort="-x"),
            tooltip=["token", "token_id", alt.Tooltip("probability:Q", format=".4f")],
        )
    )
    st.altair_chart(chart, width="stretch")
with right:
    st.subheader(f"Greedy continuation ({MAX_NEW_TOKENS} tokens at most)")
    st.code(prompt + readout.continuation, language=None, wrap_lines=True)
    st.caption("Token ids: " + " ".join(str(i) for i in readout.continuation_ids))
