"""``python -m eosfm_cli``."""

from eosfm_cli.cli import main

main()
