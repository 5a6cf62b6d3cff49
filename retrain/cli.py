"""`shadowline` subcommands of the retrain package (mounted by shadowline.cli).

Keep module-level imports light: `shadowline stack status` imports this module too.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
