"""`python -m mailpit_py` runs the same CLI as the `mailpit-py` script."""

from mailpit_py.cli import main

raise SystemExit(main())
