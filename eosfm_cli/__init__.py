"""eosfm: EoS-FM ensembles of specialist Earth-observation encoders."""

__version__ = "0.1.0"
