"""The explorer's server: `streamlit run server.py [-- --runs-dir DIR]` serves app.py (the Streamlit script,
which `streamlit run app.py` also serves) through st.App with two additions: the pages' imports are done before
the server listens (ui/warm_imports.py), and a path that no page has, however deep, is answered at once with a
page that says so (ui/unknown_paths.py says why)."""
import streamlit as st
from starlette.middleware import Middleware

from ui.unknown_paths import UnknownPathAnswer
from ui.warm_imports import warm_before_serving

warm_before_serving()
app = st.App("app.py", middleware=[Middleware(UnknownPathAnswer)])
