"""The `uacsta` command (Typer)."""

from __future__ import annotations

import typer

from uacsta import __version__

app = typer.Typer(help="uacsta: uaCSTA server for SIP desk phones.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the uacsta version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
