"""Streamlit helpers the pages share (pages/ holds only the routed pages)."""
