"""The explorer's server: `streamlit run server.py [-- --runs-dir DIR]` serves app.py (the Streamlit script,
which `streamlit run app.py` also serves) through st.App with three additions: the pages' imports are done before
the server listens (ui/warm_imports.py), a path that no page has, however deep, is answered at once with a
page that says so (ui/unknown_paths.py says why), and the shell page preloads the chart's code while it waits
for the first script run (ui/preload_chunks.py)."""
import streamlit as st
from starlette.middleware import Middleware

from ui.preload_chunks import PreloadChartChunks
from ui.unknown_paths import UnknownPathAnswer
from ui.warm_imports import warm_before_serving

warm_before_serving()
app = st.App("app.py", middleware=[Middleware(UnknownPathAnswer), Middleware(PreloadChartChunks)])
