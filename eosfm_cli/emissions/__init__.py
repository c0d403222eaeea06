"""Energy and carbon of stage runs: tracking with CodeCarbon, and the report over workspaces.

Modules: :mod:`~eosfm_cli.emissions.record` (what one run consumed),
:mod:`~eosfm_cli.emissions.tracker` (the CodeCarbon wrapper),
:mod:`~eosfm_cli.emissions.measurement_mode` (how power was obtained),
:mod:`~eosfm_cli.emissions.reader` (workspaces' manifests and CSVs into rows),
:mod:`~eosfm_cli.emissions.report` (rows into the report),
:mod:`~eosfm_cli.emissions.render` (the report as Markdown, JSON, CSV) and
:mod:`~eosfm_cli.emissions.figure` (the report's PNG).

Nothing is imported here, so that importing one module never loads CodeCarbon or
matplotlib.
"""
