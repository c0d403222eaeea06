"""Datasets: the experiment registry, one module per dataset family, and synthetic data."""
