"""`python -m gateway` runs the same CLI as the `gateway` console script."""

from gateway.cli.main import main

raise SystemExit(main())
