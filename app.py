"""Relation Neuron Explorer: Streamlit entry point. `streamlit run app.py [-- --runs-dir DIR]`."""
import argparse
import sys

import streamlit as st

st.set_page_config(page_title="Relation Neuron Explorer", page_icon=":material/psychology:", layout="wide")


def _runs_dir_argument() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.runs_dir


if _runs_dir_argument():
    st.session_state["runs_dir_override"] = _runs_dir_argument()

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    st.Page("pages/overlap.py", title="Overlap", icon=":material/grid_on:", url_path="overlap"),
    st.Page("pages/layers.py", title="Layers", icon=":material/bar_chart:", url_path="layers"),
    st.Page("pages/neuron.py", title="Neuron", icon=":material/biotech:", url_path="neuron"),
    st.Page("pages/effects.py", title="Effects", icon=":material/trending_down:", url_path="effects"),
    st.Page("pages/lab.py", title="Lab", icon=":material/science:", url_path="lab"),
]
st.sidebar.caption("Relation Neuron Explorer — *On Relation-Specific Neurons in LLMs* (Liu et al. 2025)")
st.navigation(pages).run()
