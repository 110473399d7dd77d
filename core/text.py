"""Text from users (links, text boxes, file contents) shown by the app as text, never as Markdown."""
from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping them all also defuses
# Streamlit's own directives (":material/...:", ":red[...]", "$latex$").
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# The front end links bare URLs, e-mail addresses and www. names in the text that Markdown leaves, escapes or
# not; an invisible zero-width space after the scheme, the "www" or the "@" keeps them plain text.
# "www" is tried first: a name such as "www.:" is also a scheme-like word, and breaking it only before the colon
# would leave "www." whole.
_AUTOLINK = re.compile(r"(?i)(\bwww(?=\.)|\b[a-z][a-z0-9+.-]*(?=:)|@)")
_ZERO_WIDTH_SPACE = "\u200b"


def escape_markdown(text: object) -> str:
    """`text` with every Markdown-active character escaped and line breaks kept as spaces."""
    flat = " ".join(str(text).splitlines())
    return _PUNCTUATION.sub(r"\\\1", _AUTOLINK.sub(lambda m: m.group(1) + _ZERO_WIDTH_SPACE, flat))
