"""CLI subcommands, one module each (see sop/cli.py)."""
