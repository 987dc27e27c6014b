"""``python -m cvlab`` runs the command line."""

from cvlab.cli import main

raise SystemExit(main())
