"""``atlas keys create|list|revoke``: API keys with roles, stored hashed in ATLAS_API_KEYS_FILE (see atlas_api.keys)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from atlas_api.keys import KeyStore

app = typer.Typer(help="Create, list and revoke API keys (roles: read, label, steer, admin).", no_args_is_help=True)


def _store() -> KeyStore:
    from atlas_api.keys import KeyStore
    from atlas_api.settings import ApiSettings

    return KeyStore(ApiSettings().keys_file)


@app.command()
def create(
    name: str = typer.Argument(..., help="Who uses the key (a team, a dashboard, a service)."),
    role: list[str] = typer.Option(
        ..., "--role", "-r", help="read | label | steer | admin (repeat or comma-separate)."
    ),
) -> None:
    """Create a key and print it ONCE (only its SHA-256 is stored)."""
    from atlas_api.keys import parse_roles

    store = _store()
    key, token = store.create(name, parse_roles(role))
    typer.echo(
        f"created key {key.id} ({key.name}) with roles {', '.join(sorted(r.value for r in key.roles))} in {store.path}"
    )
    typer.echo("send it as header 'X-API-Key: <key>'; it is shown only now:")
    typer.echo(token)


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Show revoked keys too."),
    output: str = typer.Option("table", "--format", "-f", help="table | json"),
) -> None:
    """List keys (id, name, roles, created, revoked); never the secrets."""
    keys = [k for k in _store().all_keys() if all_ or k.revoked is None]
    if output == "json":
        typer.echo(json.dumps([{k: v for k, v in key.to_json().items() if k != "sha256"} for key in keys], indent=1))
        return
    if not keys:
        typer.echo("(no API keys; create one with `atlas keys create NAME --role read`)")
    for k in keys:
        revoked = f"  REVOKED {k.revoked}" if k.revoked else ""
        typer.echo(f"{k.id}  {k.name:<24} {','.join(sorted(r.value for r in k.roles)):<22} {k.created}{revoked}")


@app.command()
def revoke(key: str = typer.Argument(..., help="The key's id (from `atlas keys list`) or name.")) -> None:
    """Revoke a key (by id or name); running servers stop accepting it within a second."""
    for k in _store().revoke(key):
        typer.echo(f"revoked key {k.id} ({k.name})")
