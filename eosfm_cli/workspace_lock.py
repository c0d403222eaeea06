"""The workspace lock: one writing process per workspace, stale locks of dead ones recovered.

The lock is ``<workspace>/.lock``, a file stamped with the holder's pid, host, stage and start
time (the refusal message quotes them). A lock whose holder on this host is dead is taken
over; checking and taking happen under a short ``flock`` of the workspace folder, which the
kernel drops when a process dies, so that guard can never go stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.errors import WorkspaceError
from eosfm_cli.io import disk_error, now_iso


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is alive (a zombie is not).

    Args:
        pid: the process id; 0 or a negative id is never alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead: it holds nothing any more.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@contextlib.contextmanager
def folder_guard(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself for a short critical section.

    The kernel drops it when the process dies, so it can never go stale. Where ``fcntl`` or a
    folder descriptor is not available, the section runs unguarded.
    """
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class WorkspaceLock:
    """An exclusive, pid-stamped lock file; stale locks of dead processes are recovered.

    Attributes:
        path: the lock file.
        stage: the stage holding it (written into the file for the refusal message).
    """

    path: Path
    stage: str = ""
    held: bool = field(default=False, init=False)

    def _read_holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self, wait: bool = False, timeout: float = 3600.0, poll: float = 0.2) -> None:
        """Take the lock.

        Args:
            wait: wait for the holder to finish instead of refusing at once.
            timeout: seconds to wait at most.
            poll: seconds between attempts.

        Raises:
            WorkspaceError: when another live process holds the lock (and ``wait`` is off or
                the timeout passed).
        """
        deadline = time.monotonic() + timeout
        payload = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "stage": self.stage,
                "since": now_iso(),
            }
        )
        while True:
            # Checking the holder, recovering a stale lock and writing ours happen under a
            # short flock of the workspace folder: another process never sees our lock file
            # half-written (it would read no pid and take it for stale), and two processes
            # never both recover the same stale lock.
            with folder_guard(self.path.parent):
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    holder = self._read_holder()
                    pid = int(holder.get("pid", 0) or 0)
                    same_host = holder.get("host", socket.gethostname()) == socket.gethostname()
                    if same_host and not pid_alive(pid):
                        # Stale lock from a killed process: recover it.
                        with contextlib.suppress(FileNotFoundError):
                            self.path.unlink()
                        continue
                except OSError as err:
                    raise disk_error(err, self.path) from None
                else:
                    with os.fdopen(fd, "w") as fh:
                        fh.write(payload)
                        fh.flush()
                        os.fsync(fh.fileno())
                    self.held = True
                    return
            if wait and time.monotonic() < deadline:
                time.sleep(poll)
                continue
            raise WorkspaceError(
                f"workspace is locked by pid {pid} ({holder.get('stage') or 'a stage'}, "
                f"since {holder.get('since', '?')})",
                where=str(self.path.parent),
                hint="wait for it to finish, pass --wait, or use another --workspace",
            ) from None

    def release(self) -> None:
        """Release the lock if this process holds it."""
        if self.held:
            holder = self._read_holder()
            if int(holder.get("pid", -1) or -1) == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False
