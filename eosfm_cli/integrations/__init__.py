"""Bridges from eosfm's models to other frameworks; each needs that framework installed."""
