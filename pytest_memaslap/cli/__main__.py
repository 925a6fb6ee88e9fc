"""``python -m pytest_memaslap.cli``: memaslap-py."""

from pytest_memaslap.cli.memaslap import main

raise SystemExit(main())
