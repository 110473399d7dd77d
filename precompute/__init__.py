"""Offline commands: build the demo corpus, train the demo model, measure recall, precompute runs."""
