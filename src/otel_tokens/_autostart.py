"""Imported by the ``otel_tokens_autostart.pth`` hook when OTEL_TOKENS_ENABLED is set and not false.

A truthy value starts otel-tokens; anything else (``OTEL_TOKENS_ENABLED=ture``) is reported in
one line naming the variable and the fix, and otel-tokens stays off.
"""

from __future__ import annotations

import os

from otel_tokens import names as n
from otel_tokens import settings

if os.environ.get(n.ENV_ENABLED, "").strip().lower() in settings.TRUE:
    from otel_tokens.distro.bootstrap import start

    start()
else:
    settings.check()
