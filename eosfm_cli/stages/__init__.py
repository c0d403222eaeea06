"""Pipeline stages: plain functions taking a resolved profile and a workspace."""
