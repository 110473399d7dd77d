"""Text from users (links, text boxes, file contents) shown by the app as text, never as Markdown."""
from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all also defuses
# Streamlit's own directives (":material/...:", ":red[...]", "$latex$") and GFM autolinks ("http\:", "www\.").
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: object) -> str:
    """`text` with every Markdown-active character escaped and line breaks kept as spaces."""
    flat = " ".join(str(text).splitlines())
    return _PUNCTUATION.sub(r"\\\1", flat)
