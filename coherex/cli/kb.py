"""`coherex kb`: the team's knowledge base — add files, search, list, remove, re-embed."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table

from coherex.cli._common import console, err_console, print_json, run_async
from coherex.cli._context import cli_context, parse_inputs
from coherex.errors import UserError
from coherex.knowledge import Progress, ingest_file, knowledge_search, reindex_collection

app = typer.Typer(no_args_is_help=True)

COLLECTION = typer.Option(
    ..., "--collection", "-c", help="Collection name (lower-case letters, digits, dashes)."
)
JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _bar() -> Bar:
    return Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


@app.command("add")
def add(
    paths: list[Path] = typer.Argument(..., help="Files to add (text, Markdown, HTML, PDF, DOCX, CSV)."),
    collection: str = COLLECTION,
    as_json: bool = JSON,
) -> None:
    """Add files to a collection (created on first use). Files already there are skipped."""

    async def go() -> int:
        results, failures = [], []
        async with cli_context() as ctx:
            with _bar() as bar:
                for path in paths:
                    task = bar.add_task(escape(path.name), total=None)

                    def on_progress(p: Progress, task=task) -> None:
                        bar.update(
                            task,
                            description=f"{escape(p.filename)} [dim]{p.stage}[/]",
                            total=p.total,
                            completed=p.done,
                        )

                    try:
                        # the path as typed is the source: docs/a/README.md and docs/b/README.md stay apart
                        result = await ingest_file(
                            ctx.db,
                            ctx.identity,
                            ctx.team.id,
                            collection,
                            path,
                            str(path),
                            progress=on_progress,
                        )
                    except UserError as exc:
                        failures.append({"file": str(path), "error": exc.message, "hint": exc.hint})
                        bar.update(task, description=f"{escape(path.name)} [red]failed[/]")
                        continue
                    results.append(result)
                    state = "added" if result.added else "already there"
                    bar.update(
                        task, description=f"{escape(path.name)} [green]{state}[/]", total=1, completed=1
                    )
        if as_json:
            print_json({"added": [_result_dict(r) for r in results], "failed": failures})
        else:
            added = [r for r in results if r.added]
            console.print(
                f"{len(added)} added ({sum(r.chunks for r in added)} chunks), "
                f"{len(results) - len(added)} already in {collection!r}, {len(failures)} failed."
            )
            for f in failures:
                err_console.print(
                    f"[bold red]error:[/] {escape(f['error'])}"
                    + (f"\n  hint: {escape(f['hint'])}" if f["hint"] else "")
                )
        return 1 if failures else 0

    raise typer.Exit(run_async(go()))


def _result_dict(r) -> dict:
    return {
        "file": r.filename,
        "document_id": str(r.document_id),
        "title": r.title,
        "chunks": r.chunks,
        "added": r.added,
        "replaced": r.replaced,
    }


@app.command("search")
def search(
    query: str = typer.Argument(..., help='What to look for: a question, words, or "a phrase".'),
    collection: str = COLLECTION,
    k: int = typer.Option(5, "-k", "--top", help="How many passages to return (1-50)."),
    where: list[str] = typer.Option([], "--where", help="Metadata filter key=value (e.g. source=guide.pdf)."),
    as_json: bool = JSON,
) -> None:
    """Search a collection: semantic and keyword search combined."""
    filters = {key: _typed(value) for key, value in parse_inputs(where).items()}

    async def go() -> None:
        async with cli_context() as ctx:
            hits = await knowledge_search(
                ctx.db, ctx.identity, ctx.team.id, collection, query, k, filters=filters
            )
        if as_json:
            print_json([h.to_dict() for h in hits])
            return
        if not hits:
            console.print("No matching passages.")
        for i, h in enumerate(hits, start=1):
            where_ = ", ".join(str(x) for x in (h.metadata.get("section"), _page(h.metadata)) if x)
            console.print(
                f"[bold]{i}. {escape(h.title)}[/] [dim]{escape(h.source)}"
                f"{' · ' + escape(where_) if where_ else ''} · score {h.score:.4f}[/]"
            )
            console.print("   " + re.sub(r"\*\*(.+?)\*\*", r"[bold yellow]\1[/]", escape(h.highlight)))

    run_async(go())


def _page(meta: dict) -> str | None:
    return f"p. {meta['page']}" if "page" in meta else None


def _typed(value: str) -> object:
    return int(value) if value.isdigit() else value


@app.command("list")
def list_(
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="List this collection's documents."
    ),
    as_json: bool = JSON,
) -> None:
    """List collections, or the documents of one collection."""

    async def go() -> None:
        from coherex.services import knowledge

        async with cli_context() as ctx:
            if collection is None:
                stats = await knowledge.collection_stats(ctx.db, ctx.identity, ctx.team.id)
                rows = [
                    {
                        "name": c.name,
                        "documents": c.documents,
                        "chunks": c.chunks,
                        "model": c.embedding_model,
                        "dim": c.embedding_dim,
                    }
                    for c in stats
                ]
            else:
                rows = [
                    {
                        "source": d.source,
                        "title": d.title,
                        "type": d.mime_type,
                        "chunks": d.chunk_count,
                        "status": d.status,
                        "added": d.created_at.isoformat(timespec="seconds"),
                        "id": str(d.id),
                    }
                    for d in await knowledge.documents(ctx.db, ctx.identity, ctx.team.id, collection)
                ]
        if as_json:
            print_json(rows)
        elif not rows:
            console.print(
                "No collections yet. Add files with `coherex kb add PATH --collection NAME`."
                if collection is None
                else "The collection is empty."
            )
        else:
            table = Table(*rows[0].keys())
            for row in rows:
                table.add_row(*(escape(str(v)) for v in row.values()))
            console.print(table)

    run_async(go())


@app.command("rm")
def rm(
    collection: str = typer.Argument(..., help="The collection."),
    documents: list[str] = typer.Option(
        [], "--document", "-d", help="Remove only this document (source or id)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove a collection with everything in it, or some of its documents."""
    what = (
        f"{len(documents)} document(s) from {collection!r}" if documents else f"the collection {collection!r}"
    )
    if not yes and not typer.confirm(f"Remove {what}?"):
        raise typer.Abort()

    async def go() -> None:
        from coherex.services.knowledge import remove

        async with cli_context() as ctx:
            await remove(ctx.db, ctx.identity, ctx.team.id, collection, list(documents or []))
        console.print(f"Removed {what}.")

    run_async(go())


@app.command("reindex")
def reindex(collection: str = COLLECTION) -> None:
    """Re-embed a collection with the configured embeddings model (after changing COHEREX_EMBEDDINGS)."""

    async def go() -> int:
        async with cli_context() as ctx:
            with _bar() as bar:
                task = bar.add_task(f"re-embedding {escape(collection)}", total=None)
                count = await reindex_collection(
                    ctx.db,
                    ctx.identity,
                    ctx.team.id,
                    collection,
                    progress=lambda p: bar.update(task, total=p.total, completed=p.done),
                )
        return count

    count = run_async(go())
    console.print(f"Re-embedded {count} chunks of {collection!r}.")
