"""`python -m prodmatch` runs the CLI."""

from prodmatch.cli import main

main()
