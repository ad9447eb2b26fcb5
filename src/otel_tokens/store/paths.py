"""Where the local store lives.

The default is a per-user file:

* ``$OTEL_TOKENS_STORE`` when set (any path; ``~`` is expanded);
* else ``$XDG_DATA_HOME/otel-tokens/telemetry.db`` when ``XDG_DATA_HOME`` is set;
* else ``~/.local/share/otel-tokens/telemetry.db`` (``%LOCALAPPDATA%\\otel-tokens`` on Windows).

The directory is created ``0700`` and the file ``0600``: span attributes name users,
teams and tasks, which is nobody else's business on a shared machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from otel_tokens import names as n

APP_DIR = "otel-tokens"
DB_FILE = "telemetry.db"


def default_store_path() -> Path:
    """The store path for this user, honouring ``OTEL_TOKENS_STORE``."""
    explicit = os.environ.get(n.ENV_STORE, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    if xdg:
        return Path(xdg).expanduser() / APP_DIR / DB_FILE
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", "").strip()
        if base:
            return Path(base) / APP_DIR / DB_FILE
    return Path.home() / ".local" / "share" / APP_DIR / DB_FILE


def ensure_private_file(path: Path) -> None:
    """Create the parent directory (0700) and an empty file (0600) if they do not exist.

    Existing directories and files keep their permissions: the user may have chosen them.
    """
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
