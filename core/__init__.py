"""Relation Neuron Explorer core: plain Python shared by the app and precompute.

Nothing here imports Streamlit. Nothing here may reach the network: the Hugging
Face hub is switched to offline mode before transformers is first imported.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
