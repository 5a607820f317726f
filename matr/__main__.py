"""``python -m matr``: the command line of :mod:`matr.cli`."""

from matr.cli import main

raise SystemExit(main())
