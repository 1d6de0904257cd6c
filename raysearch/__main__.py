"""``python -m raysearch``: the command line (:mod:`raysearch.cli`)."""

from __future__ import annotations

from raysearch.cli import main

raise SystemExit(main())
