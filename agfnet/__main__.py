"""`python -m agfnet` runs the `agfnet` command."""

from agfnet.cli.app import main

main()
