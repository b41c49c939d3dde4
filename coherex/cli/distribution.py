"""`coherex push | pull | inspect` and `coherex registry …`: agents as OCI artifacts in any registry.

Registry logins come from the team's vault (`coherex registry login`), else from the Docker
credential file of the person running the CLI (`~/.docker/config.json`, inline `auths` entries).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from coherex.cli._common import console, err_console, print_json, run_async
from coherex.cli._context import cli_context
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)  # `coherex registry …`


def default_key_path() -> Path:
    from coherex.settings import get_settings

    return get_settings().data_path / "signing.key"


def _name_version(target: str) -> tuple[str, int | None]:
    name, sep, version = target.partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise UserError(f"{target!r}: the version after ':' must be a version number (e.g. {name}:3).")
    return name, int(version)


def push(
    target: str = typer.Argument(..., help="NAME or NAME:VERSION (default: the current version)."),
    ref: str = typer.Argument(
        ..., help="Where to: REGISTRY/REPOSITORY[:TAG]; the tag defaults to the version."
    ),
    sign: bool = typer.Option(False, "--sign", help="Attach a cosign-compatible signature (see --key)."),
    key: Path | None = typer.Option(None, "--key", help="Signing key (default: <data dir>/signing.key)."),
    files: list[Path] = typer.Option(
        [], "--file", "-f", help="Ship this file with the agent (prompts, samples)."
    ),
    source: str | None = typer.Option(
        None, "--source", help="org.opencontainers.image.source (a repository URL)."
    ),
    revision: str | None = typer.Option(None, "--revision", help="org.opencontainers.image.revision."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Push an agent version to an OCI registry (spec and needs only: no credential ever leaves)."""
    from coherex.distribution import service

    name, version = _name_version(target)
    shipped = {}
    for f in files:
        if not f.is_file():
            raise UserError(f"--file {f}: no such file")
        shipped[f.name] = f.read_bytes()
    key_path = (key or default_key_path()) if sign else None
    if key is not None and not sign:
        raise UserError("--key is only used with --sign.")

    async def go():
        async with cli_context() as ctx:
            return await service.push(
                ctx.db,
                ctx.identity,
                ctx.team.id,
                name,
                ref,
                version=version,
                sign_key=key_path,
                files=shipped,
                docker_config=True,
                source=source,
                revision=revision,
            )

    result = run_async(go())
    if as_json:
        print_json(result.as_dict())
        return
    console.print(f"pushed {name} v{result.version} → [bold]{result.ref}[/]")
    console.print(f"  digest  {result.digest}   ({result.size} bytes)")
    console.print(f"  pinned  {result.as_dict()['pinned']}")
    if result.signed:
        console.print(f"  signed  with {key_path} (cosign format; verify with its .pub)")


def _print_pull(result, verb: str = "pulled") -> None:
    r = result.as_dict()
    if result.already:
        console.print(f"{r['ref']} was pulled before: {result.agent} v{result.version}; nothing changed")
    elif not result.created_version:
        console.print(f"{verb} {r['ref']}: same spec as {result.agent} v{result.version}; nothing changed")
    else:
        console.print(
            f"{verb} {r['ref']} → {'new agent ' if result.created_agent else ''}"
            f"[bold]{result.agent}[/] v{result.version}"
        )
    console.print(f"  digest     {result.digest}")
    console.print(f"  signature  {result.signature['summary']}")
    for note in result.import_notes:
        console.print(f"  [yellow]not imported:[/] {note}", markup=True)


def pull(
    ref: str = typer.Argument(..., help="REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]"),
    files_to: Path | None = typer.Option(None, "--files-to", help="Write the files shipped with it here."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pull an agent into the current team (a new version, or a new agent); a digest already
    pulled changes nothing."""
    result = run_async(_pull(ref))
    if files_to is not None:
        _write_files(result.files, files_to)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_pull(result)


async def _pull(ref: str):
    from coherex.distribution import service

    async with cli_context() as ctx:
        return await service.pull(ctx.db, ctx.identity, ctx.team.id, ref, docker_config=True)


def _write_files(files: dict[str, bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():  # names are plain base names (checked when read)
        path = directory / name
        if path.exists():
            raise UserError(f"{path} exists; refusing to overwrite it.")
        path.write_bytes(data)
        console.print(f"  wrote {path}")


def inspect(
    ref: str = typer.Argument(..., help="REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]"),
    as_json: bool = typer.Option(False, "--json", help="Everything: manifest, config, spec, signature."),
) -> None:
    """Show an artifact's manifest, config, digest and signature status without saving anything."""
    from coherex.distribution import service

    async def go():
        async with cli_context() as ctx:
            return await service.inspect(ctx.db, ctx.identity, ctx.team.id, ref, docker_config=True)

    info = run_async(go())
    if as_json:
        print_json(info)
        return
    cfg = info["config"]
    console.print(f"[bold]{info['ref']}[/]")
    console.print(f"  digest       {info['digest']}")
    console.print(
        f"  agent        {cfg.get('name')} v{cfg.get('version', '?')}: {cfg.get('description', '')}"
    )
    console.print(f"  tools        {', '.join(cfg.get('tools') or []) or 'none'}")
    sources = ", ".join(f"{d['name']} ({d['type']})" for d in cfg.get("dataSources") or [])
    console.print(f"  data sources {sources or 'none'}")
    if info["files"]:
        console.print(f"  files        {', '.join(info['files'])}")
    for k, v in sorted((info["manifest"].get("annotations") or {}).items()):
        console.print(f"  {k} = {v}", markup=False)
    required = " (required by this team)" if info["signature_required"] else ""
    console.print(f"  signature    {info['signature']['summary']}{required}")
    for note in info["import_notes"]:
        console.print(f"  not imported: {note}", markup=False)


# ---------------------------------------------------------------- coherex registry …


@app.command()
def login(
    registry: str = typer.Argument(..., help="Registry host[:port], e.g. ghcr.io"),
    username: str = typer.Option(..., "--username", "-u"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password (token) from stdin."
    ),
) -> None:
    """Store a registry login for the team, sealed by the vault (checked against the registry first)."""
    from coherex.distribution import service

    if password_stdin:
        password = sys.stdin.read().strip()
    else:
        password = typer.prompt("Password", hide_input=True)

    async def go():
        async with cli_context() as ctx:
            await service.login(ctx.db, ctx.identity, ctx.team.id, registry, username, password)

    run_async(go())
    console.print(f"Login for {registry} stored in the team's vault (user {username}).")


@app.command()
def logout(registry: str = typer.Argument(...)) -> None:
    """Remove the team's login for a registry."""
    from coherex.distribution import service

    async def go():
        async with cli_context() as ctx:
            return await service.logout(ctx.db, ctx.identity, ctx.team.id, registry)

    console.print(
        f"Removed the login for {registry}." if run_async(go()) else f"No login stored for {registry}."
    )


@app.command()
def keygen(
    path: Path | None = typer.Option(
        None, "--out", help="Private key file (default: <data dir>/signing.key)."
    ),
) -> None:
    """Create an ECDSA P-256 key pair for `coherex push --sign` (cosign reads both files)."""
    from coherex.distribution import signing

    target = path or default_key_path()
    public = signing.generate_keys(target)
    console.print(
        f"private key {target} (mode 0600; keep it secret)\npublic key  {public} (give it to those who "
        "pull: `coherex registry trust NAME FILE.pub`)"
    )


@app.command()
def trust(
    name: str = typer.Argument(..., help="A name for the key, e.g. acme-release."),
    public_key: Path = typer.Argument(..., help="PEM public key file (cosign.pub or signing.pub)."),
) -> None:
    """Trust signatures made with this public key (team admins)."""
    from coherex.distribution import service

    if not public_key.is_file():
        raise UserError(f"{public_key}: no such file")

    async def go():
        async with cli_context() as ctx:
            return await service.trust_key(ctx.db, ctx.identity, ctx.team.id, name, public_key.read_text())

    console.print(f"Trusted key {name} (fingerprint {run_async(go())}).")


@app.command()
def untrust(name: str) -> None:
    """Stop trusting a key (team admins)."""
    from coherex.distribution import service

    async def go():
        async with cli_context() as ctx:
            return await service.untrust_key(ctx.db, ctx.identity, ctx.team.id, name)

    console.print(f"Key {name} is no longer trusted." if run_async(go()) else f"No trusted key named {name}.")


@app.command("keys")
def keys_() -> None:
    """The team's trusted keys and its signature policy."""
    from coherex.distribution import service, signing

    async def go():
        async with cli_context() as ctx:
            return await service.trusted_keys(ctx.db, ctx.identity, ctx.team.id)

    required, keys = run_async(go())
    console.print(f"signature required for pulls: {'yes' if required else 'no'}")
    table = Table("NAME", "FINGERPRINT", box=None)
    for name, pem in keys.items():
        table.add_row(name, signing.key_fingerprint(pem))
    console.print(table)


@app.command("require-signature")
def require_signature(state: str = typer.Argument(..., help="on or off")) -> None:
    """Refuse to save a pull without a valid signature from a trusted key (team admins)."""
    from coherex.distribution import service

    if state not in ("on", "off"):
        raise UserError(f"{state!r}: say on or off.")

    async def go():
        async with cli_context() as ctx:
            await service.require_signatures(ctx.db, ctx.identity, ctx.team.id, state == "on")

    run_async(go())
    err_console.print(
        f"Pulls {'now need' if state == 'on' else 'no longer need'} a valid signature from a trusted key."
    )


def looks_like_reference(target: str) -> bool:
    """`coherex run` target: a registry reference rather than an agent name or a file."""
    host = target.split("/", 1)[0]
    return "/" in target and ("." in host or ":" in host or host == "localhost") and not Path(target).exists()


def register(root: typer.Typer) -> None:
    root.command("push")(push)
    root.command("pull")(pull)
    root.command("inspect")(inspect)
    root.add_typer(
        app, name="registry", help="Registry logins, signing keys and the team's signature policy."
    )
