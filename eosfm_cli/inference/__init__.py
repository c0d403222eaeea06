"""Inference over a raster of any size, tile by tile.

This is the code that ``predict`` runs and that embedding maps, exported runtimes and
benchmarks can reuse. Nothing here knows of stages or of a workspace: functions take paths, a
model (or a per-tile function) and options.

- :mod:`~eosfm_cli.inference.tiling`: where tiles lie, and how overlapping tiles are blended.
- :mod:`~eosfm_cli.inference.raster`: the input GeoTIFF checked against the model's bands.
- :mod:`~eosfm_cli.inference.reading`: windowed reads of the tiles, with nodata filled.
- :mod:`~eosfm_cli.inference.strips`: blended sums of a strip of rows; finished rows written.
- :mod:`~eosfm_cli.inference.dense`: the dense tile loop, for any per-tile function.
- :mod:`~eosfm_cli.inference.heads`: a fitted head as a per-tile function and its output.
- :mod:`~eosfm_cli.inference.boxes`: detections over tiles, each object reported once.
- :mod:`~eosfm_cli.inference.vectors`: boxes written as GeoPackage or GeoJSON polygons.
- :mod:`~eosfm_cli.inference.outputs`: a prediction's files, written whole or not at all.
- :mod:`~eosfm_cli.inference.embeddings`: the ensemble's features on a pyramid level's grid.
- :mod:`~eosfm_cli.inference.pca`: a PCA basis for embeddings, fitted, saved and reused.
- :mod:`~eosfm_cli.inference.embedding_files`: embedding COGs and their provenance.
- :mod:`~eosfm_cli.inference.geoparquet`: embeddings pooled over patches, as GeoParquet.
"""
