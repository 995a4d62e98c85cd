"""`prodmatch keys ...`: API keys for the HTTP API (kept, hashed, in the catalog's metadata store)."""

from __future__ import annotations

from typing import Annotated

import typer

from prodmatch.application.keys import SCOPES, Scope, create_key, list_keys, revoke_key
from prodmatch.cli.common import DataDirOption, JsonOption, configured_catalog, err, out, print_json, table_rows

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    scope: Annotated[str, typer.Option("--scope", help="match (queries, reads) | admin (also writes and keys)")],
    name: Annotated[str, typer.Option("--name", help="what the key is for")] = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a key; it is printed once and cannot be shown again."""
    if scope not in SCOPES:
        raise typer.BadParameter(f"--scope must be one of: {', '.join(SCOPES)}")
    chosen: Scope = "admin" if scope == "admin" else "match"
    with configured_catalog(ctx, data_dir) as catalog:
        record, key = create_key(catalog, chosen, name)
    if as_json:
        print_json({"id": record.id, "key": key, "scope": record.scope, "name": record.name})
        return
    out.print(key)
    err.print(f"[cyan]key {record.id} ({record.scope}) — store it now: it is not shown again")


@keys_app.command("list")
def keys_list(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """The keys (ids, names, scopes, when made and revoked); never the keys themselves."""
    with configured_catalog(ctx, data_dir) as catalog:
        records = list_keys(catalog)
    rows = [
        {"id": r.id, "name": r.name, "scope": r.scope, "created_at": r.created_at, "revoked_at": r.revoked_at}
        for r in records
    ]
    if as_json:
        print_json(rows)
        return
    columns = ["id", "name", "scope", "created_at", "revoked_at"]
    table_rows(f"{len(rows)} API keys", columns, [[str(row[c] or "") for c in columns] for row in rows])


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str, data_dir: DataDirOption = None) -> None:
    """Revoke a key: requests with it are refused (within seconds, by a running server)."""
    with configured_catalog(ctx, data_dir) as catalog:
        revoke_key(catalog, key_id)
    out.print(f"revoked {key_id}")
