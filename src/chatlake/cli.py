"""The one ``chatlake`` command.

Subcommands live beside the component they drive and are imported only when
used, so ``chatlake sql`` does not pay for starting gRPC, Dash or the SDK.
"""

from __future__ import annotations

import importlib

import click

from chatlake import __version__
from chatlake.errors import ChatlakeError

# name -> "module:attribute" of a click command or group.
COMMANDS = {
    "up": "chatlake.up:up",
    "catalog": "chatlake.catalog.commands:serve",
    "catalogs": "chatlake.catalog.commands:catalogs",
    "schemas": "chatlake.catalog.commands:schemas",
    "tables": "chatlake.catalog.commands:tables",
    "principals": "chatlake.catalog.commands:principals",
    "grants": "chatlake.catalog.commands:grants",
    "generate-proto": "chatlake.catalog.commands:generate_proto",
    "ingest": "chatlake.ingest.commands:serve",
    "app": "chatlake.app.commands:serve",
    "demo": "chatlake.app.commands:demo",
    "model": "chatlake.app.commands:model",
    "sql": "chatlake.analytics.commands:sql",
    "report": "chatlake.analytics.commands:report",
    "alerts": "chatlake.analytics.commands:alerts",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def invoke(self, ctx: click.Context):
        # Expected failures are one line on stderr, never a traceback.
        try:
            return super().invoke(ctx)
        except ChatlakeError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chatlake")
def main() -> None:
    """chatlake: chatbot telemetry streamed into Delta Lake tables."""
