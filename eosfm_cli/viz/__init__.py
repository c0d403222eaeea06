"""Pictures of inputs and results: one class palette, one RGB quicklook, matplotlib figures.

- :mod:`~eosfm_cli.viz.palette`: the colour of each class, in every PNG and GeoTIFF colormap.
- :mod:`~eosfm_cli.viz.quicklook`: the RGB-like picture of a multi-band image.
- :mod:`~eosfm_cli.viz.figures`: headless figures, saved atomically; legends and boxes.
- :mod:`~eosfm_cli.viz.metrics`: confusion matrices and per-class score bars.
- :mod:`~eosfm_cli.viz.samples`: test samples with their truth and prediction.
- :mod:`~eosfm_cli.viz.previews`: ``predict``'s previews of a raster of any size.
"""
