"""The explorer's server: `streamlit run server.py [-- --runs-dir DIR]` serves app.py (the Streamlit script,
which `streamlit run app.py` also serves) through st.App with two additions: a path that no page has, however
deep, is answered at once with a page that says so (ui/unknown_paths.py says why), and the data pages' imports
are done in the background at start (ui/warm_imports.py), not by the first visitor."""
import contextlib

import streamlit as st
from starlette.middleware import Middleware

from ui.unknown_paths import UnknownPathAnswer
from ui.warm_imports import warm_in_background


@contextlib.asynccontextmanager
async def lifespan(app):
    warm_in_background()
    yield


app = st.App("app.py", middleware=[Middleware(UnknownPathAnswer)], lifespan=lifespan)
