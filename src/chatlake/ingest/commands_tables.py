"""``chatlake tables optimize``: table maintenance on demand, beside the catalog's
``tables`` commands (it registers itself on that group)."""

from __future__ import annotations

import json

import click

from chatlake.catalog.commands import client_options, tables
from chatlake.cli_options import FiniteFloat, json_option
from chatlake.names import parse_table_name

# Ten years: infinity would overflow the vacuum's retention.
MAX_RETENTION_HOURS = 87_600.0


@tables.command("optimize")
@click.argument("name", metavar="CATALOG.SCHEMA.TABLE")
@click.option(
    "--retention-hours",
    type=FiniteFloat(min=0, max=MAX_RETENTION_HOURS),
    default=168.0,
    show_default=True,
    help="Vacuum deletes unreferenced files older than this.",
)
@click.option("--no-vacuum", is_flag=True, help="Compact and checkpoint only.")
@client_options
@json_option()
def optimize(client, name, retention_hours, no_vacuum, as_json) -> None:
    """Compact a table's small files, write a checkpoint, then vacuum.

    Safe while ingest is writing, with a retention of hours. A shorter
    --retention-hours frees disk sooner but breaks readers still on an older
    version; 0 can even delete the file of a commit still in flight, so use
    it only with ingest stopped.
    """
    from chatlake.ingest.maintenance import optimize_table

    parse_table_name(name)
    location = client.get_table(name)["storage_location"]
    report = optimize_table(
        name,
        location,
        vacuum=not no_vacuum,
        vacuum_retention_hours=retention_hours,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    click.echo(
        f"{name}: compacted {report.files_removed} files into {report.files_added}, "
        f"checkpoint at version {report.checkpoint_version}, "
        f"vacuumed {report.vacuumed_files} files"
    )
