"""`python -m otel_tokens` is the `otel-tokens` command."""

from __future__ import annotations

import sys

from otel_tokens.cli.main import main

sys.exit(main())
