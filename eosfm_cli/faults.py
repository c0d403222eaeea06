"""Fault injection for the crash-safety tests: kill this process at a named point.

When the environment variable ``EOSFM_TEST_CRASH_AT`` equals a point's name, the process sends
itself SIGKILL there: no ``finally`` block, no ``atexit`` hook and no flush runs, exactly as
when the machine loses power or the OOM killer strikes. Unset (always, outside the tests), a
point costs one dictionary look-up. Points:

- ``<stage>:start``: the manifest says ``running``, nothing else is written yet;
- ``<stage>:finish``: every artifact is written, the manifest still says ``running``;
- ``rename:<file name>``: an atomic write has its temporary file complete, not yet renamed;
- ``train:epoch<N>``: the start of training epoch N in train-specialist and fit-head (the
  checkpoints of epoch N-1 exist).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "EOSFM_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``EOSFM_TEST_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
