"""`coherex sources`: connect data sources once, share them across agents."""

from __future__ import annotations

import os
from typing import Any

import typer

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)


def _pairs(items: list[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, item in enumerate(items, 1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # never echo it: a pasted token without `key=` would land in the terminal and its logs
            raise UserError(f"{flag} number {number} is not key=value (its value is not shown).")
        out[key.strip()] = value
    return out


@app.command("add")
def add(
    type_name: str = typer.Argument(
        ..., metavar="TYPE", help="slack, github, gmail, http_api, postgres or mcp"
    ),
    name: str = typer.Argument(..., help="name agents use in `dataSource:` (lowercase, digits, dashes)"),
    config: list[str] = typer.Option([], "--config", "-c", help="non-secret setting key=value (repeatable)"),
    secret: list[str] = typer.Option(
        [], "--secret", "-s", help="credential key=value (repeatable); prefer --from-env"
    ),
    from_env: bool = typer.Option(
        False,
        "--from-env",
        help="read credentials from TYPE_FIELD variables, e.g. SLACK_BOT_TOKEN, GITHUB_TOKEN, POSTGRES_DSN",
    ),
    base_url: str | None = typer.Option(None, "--base-url", help="http_api: the API's base URL"),
    openapi: str | None = typer.Option(
        None,
        "--openapi",
        help="http_api: an OpenAPI 3 document (URL or file) whose operations become tools; "
        "the base URL defaults to its server",
    ),
    url: str | None = typer.Option(None, "--url", help="mcp: the remote server's endpoint"),
    command: str | None = typer.Option(
        None, "--command", help='mcp: a stdio server to run in a sandbox box, e.g. "npx -y @scope/server"'
    ),
    header: list[str] = typer.Option([], "--header", help="mcp: HTTP header K=V sent to --url (secret)"),
    env: list[str] = typer.Option([], "--env", help="mcp: environment K=V of the --command server (secret)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add a data source; credentials are encrypted before they are stored."""
    from coherex.integrations import add_source, check_source
    from coherex.integrations.service import credential_fields, env_name

    fields = credential_fields(type_name)
    credentials: dict[str, Any] = _pairs(secret, "--secret")
    settings = _pairs(config, "--config")
    if type_name == "mcp":  # its settings and secrets have flags of their own
        settings.update({k: v for k, v in (("url", url), ("command", command)) if v})
        credentials.update(
            {k: v for k, v in (("headers", _pairs(header, "--header")), ("env", _pairs(env, "--env"))) if v}
        )
    elif url or command or header or env:
        raise UserError("--url, --command, --header and --env are for `coherex sources add mcp NAME`.")
    if from_env:
        for field in fields:
            value = os.environ.get(env_name(type_name, field))
            if value and field not in credentials:
                credentials[field] = value
        missing = [
            env_name(type_name, f) for f, required in fields.items() if required and f not in credentials
        ]
        if not credentials and not missing:  # every field optional (a token *or* an app): name the usual one
            missing = [env_name(type_name, next(iter(fields)))]
        if missing:
            raise UserError(f"--from-env: {', '.join(missing)} is not set.")

    if (base_url or openapi) and type_name != "http_api":
        raise UserError("--base-url and --openapi are settings of http_api sources.")
    if base_url:
        settings["base_url"] = base_url
    operations = None
    if openapi:
        from coherex.tools.providers.openapi import openapi_config

        settings = run_async(openapi_config(openapi, settings, credentials))
        operations = settings.pop("_operations")

    async def go():
        async with cli_context() as ctx:
            await add_source(
                ctx.db, ctx.identity, ctx.team.id, type_name, name, config=settings, credentials=credentials
            )
            return await check_source(ctx.db, ctx.identity, ctx.team.id, name)

    source, check = run_async(go())
    if as_json:
        out = {"name": source.name, "type": source.type, "status": source.status, "check": check.summary}
        print_json(out if operations is None else {**out, "operations": operations})
        return
    console.print(f"Added data source [bold]{source.name}[/] ({source.type}).")
    if operations is not None:
        console.print(
            f"Its OpenAPI document has {operations} operation(s); agents use them with `use: openapi`."
        )
    console.print(("[green]ok:[/] " if check.ok else "[yellow]not working yet:[/] ") + check.summary)


@app.command("connect")
def connect(
    type_name: str = typer.Argument(..., metavar="TYPE", help="gmail, github or slack"),
    name: str = typer.Argument(...),
    config: list[str] = typer.Option([], "--config", "-c"),
) -> None:
    """Connect through the provider's sign-in (OAuth2): prints the link to open in a browser."""
    from coherex.integrations.oauth import start_authorization

    async def go() -> str:
        async with cli_context() as ctx:
            return await start_authorization(
                ctx.db, ctx.identity, ctx.team.id, type_name, name, _pairs(config, "--config")
            )

    url = run_async(go())
    console.print(
        "Open this link in a browser and allow access (valid for 10 minutes; the Coherex server "
        "must be running to receive the answer):"
    )
    print(url)


@app.command("login")
def login(
    name: str = typer.Argument(..., help="the remote MCP data source whose server asks for OAuth"),
    client_id: str | None = typer.Option(
        None, "--client-id", help="a client registered with the server (default: register one)"
    ),
    client_secret: str | None = typer.Option(
        None,
        "--client-secret",
        help="that client's secret, if it has one (prefer the env variable)",
        envvar="COHEREX_MCP_CLIENT_SECRET",
    ),
    scope: str | None = typer.Option(None, "--scope", help="the scopes to ask for, space-separated"),
    port: int = typer.Option(0, "--port", help="the loopback port the browser comes back to (0: any free)"),
    wait: float = typer.Option(300, "--wait", help="seconds to wait for the sign-in"),
    no_browser: bool = typer.Option(False, "--no-browser", help="only print the link"),
) -> None:
    """Sign an MCP data source in through OAuth: prints the link, waits for the browser to come back
    to this machine, keeps the tokens in the vault (refreshed when they run out)."""
    from coherex.tools.providers.mcp.signin import sign_in

    def show(url: str) -> None:
        console.print(f"Open this link in a browser and allow access (waiting up to {int(wait)} s):")
        print(url, flush=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    async def go():
        async with cli_context() as ctx:
            return await sign_in(
                ctx.db,
                ctx.identity,
                ctx.team.id,
                name,
                show_link=show,
                client_id=client_id,
                client_secret=client_secret,
                scope=scope,
                port=port,
                wait_seconds=wait,
            )

    check = run_async(go())
    console.print(f"Signed in [bold]{name}[/]; the tokens are in the vault.")
    console.print(("[green]ok:[/] " if check.ok else "[red]failing:[/] ") + check.summary)
    if not check.ok:
        raise typer.Exit(1)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """The team's data sources and their health."""
    from coherex.integrations import list_sources

    async def go():
        async with cli_context() as ctx:
            return await list_sources(ctx.db, ctx.identity, ctx.team.id)

    sources = run_async(go())
    rows = [
        {
            "name": s.name,
            "type": s.type,
            "status": s.status,
            "last_error": s.last_error,
            "failing_since": s.failing_since,
            "last_checked_at": s.last_checked_at,
        }
        for s in sources
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No data sources yet. Add one with `coherex sources add TYPE NAME`.")
    for r in rows:
        line = f"{r['name']:<24} {r['type']:<10} {r['status']}"
        if r["status"] != "active":
            line += f" since {r['failing_since']:%Y-%m-%d %H:%M}" if r["failing_since"] else ""
            line += f" — {r['last_error']}" if r["last_error"] else ""
        console.print(line)


@app.command("test")
def test(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Check a source's connection and say what works."""
    from coherex.integrations import check_source

    async def go():
        async with cli_context() as ctx:
            return await check_source(ctx.db, ctx.identity, ctx.team.id, name)

    source, check = run_async(go())
    if as_json:
        print_json({"name": source.name, "ok": check.ok, "summary": check.summary, "status": source.status})
    else:
        console.print(("[green]ok:[/] " if check.ok else "[red]failing:[/] ") + check.summary)
    if not check.ok:
        raise typer.Exit(1)


@app.command("tools")
def tools_cmd(
    name: str,
    refresh: bool = typer.Option(
        False, "--refresh", help="ask the source again first (as `sources test` does)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The tools a source offers (MCP servers, OpenAPI documents), as found at its last check."""
    from coherex.integrations import check_source
    from coherex.integrations.service import discovered_tools

    async def go():
        async with cli_context() as ctx:
            if refresh:
                await check_source(ctx.db, ctx.identity, ctx.team.id, name)
            return await discovered_tools(ctx.db, ctx.team.id, name)

    found = run_async(go())
    if found is None:
        raise UserError(
            f"No tools are known for data source {name!r} yet.",
            hint=f"Run `coherex sources tools {name} --refresh` (or `coherex sources test {name}`).",
        )
    if as_json:
        print_json([t.to_json() for t in found])
        return
    for t in found:
        params = ", ".join(
            p + ("*" if p in t.parameters.get("required", []) else "")
            for p in t.parameters.get("properties", {})
        )
        console.print(f"[bold]{t.name}[/] ({t.access})  {params}")
        if t.description:
            console.print(f"    {t.description.splitlines()[0][:200]}")


@app.command("remove")
def remove(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Remove a source (revoking its OAuth token); agents that use it stop working."""
    from coherex.integrations import remove_source

    if not yes:
        typer.confirm(f"Remove data source {name!r}?", abort=True)

    async def go():
        async with cli_context() as ctx:
            return await remove_source(ctx.db, ctx.identity, ctx.team.id, name)

    notes = run_async(go())
    console.print(f"Removed data source {name}." + "".join(f"\n  {n}" for n in notes))


@app.command("rotate-key")
def rotate_key_cmd(
    generate: bool = typer.Option(False, "--generate", help="first add a new key to the embedded key file"),
) -> None:
    """Re-encrypt every stored credential with the newest vault key (old keys must still be set)."""
    from coherex.integrations import rotate_key
    from coherex.integrations.vault import add_key_to_file

    if generate:
        console.print(f"New key {add_key_to_file()} added (the old ones stay for decryption).")

    async def go():
        async with cli_context() as ctx:
            return await rotate_key(ctx.db)

    count, key_id = run_async(go())
    console.print(f"Re-encrypted {count} credential(s) with key {key_id}. Older keys can now be removed.")
