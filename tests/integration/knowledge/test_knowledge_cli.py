"""`coherex kb …` end to end against the test database, in-process through `coherex.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

from coherex.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_search_list_rm_round_trip(cli_env, embedder, corpus: list[Path], tmp_path: Path, capsys):
    code, out, err = run(capsys, "kb", "add", *map(str, corpus), "--collection", "library")
    assert code == 0, err
    assert f"{len(corpus)} added" in out and "0 failed" in out

    empty = tmp_path / "empty.md"
    empty.write_text("")
    code, out, err = run(capsys, "kb", "add", str(corpus[0]), str(empty), "--collection", "library", "--json")
    report = json.loads(out)
    assert code == 1 and [a["added"] for a in report["added"]] == [False]
    assert report["failed"] == [
        {"file": str(empty), "error": f"{empty} is empty.", "hint": "Upload a file with some text in it."}
    ]

    code, out, _ = run(
        capsys, "kb", "search", "what is all warfare based on", "--collection", "library", "--json", "-k", "2"
    )
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2
    assert hits[0]["source"].endswith("/art_of_war.html") and "deception" in hits[0]["content"]

    code, out, _ = run(capsys, "kb", "search", "sour grapes", "-c", "library", "--where", "page=2")
    assert (
        code == 0 and "1. Fables of Aesop" in out and "p. 2" in out and "2. " not in out
    )  # one page-2 chunk

    code, out, _ = run(capsys, "kb", "list", "--json")
    [coll] = json.loads(out)
    assert (coll["name"], coll["documents"], coll["model"], coll["dim"]) == (
        "library",
        len(corpus),
        "all-MiniLM-L6-v2",
        384,
    )

    planets = str(next(p for p in corpus if p.name == "planets.csv"))
    code, out, _ = run(capsys, "kb", "rm", "library", "--document", planets, "--yes")
    assert code == 0
    code, out, _ = run(capsys, "kb", "list", "--collection", "library", "--json")
    sources = {d["source"] for d in json.loads(out)}
    assert planets not in sources and len(sources) == len(corpus) - 1

    code, out, err = run(capsys, "kb", "rm", "library", "--yes")
    assert code == 0
    code, out, err = run(capsys, "kb", "search", "war", "--collection", "library")
    assert code == 1 and "There is no collection 'library'" in err and "Traceback" not in err


def test_errors_are_messages_not_tracebacks(cli_env, embedder, tmp_path: Path, capsys):
    fake = tmp_path / "report.pdf"
    fake.write_text("plain text pretending to be a PDF")
    code, out, err = run(capsys, "kb", "add", str(fake), "--collection", "docs")
    assert code == 1 and "report.pdf has the extension .pdf but its content is text" in err
    code, out, err = run(capsys, "kb", "add", str(tmp_path / "missing.txt"), "--collection", "docs")
    assert code == 1 and "missing.txt does not exist" in err
    code, out, err = run(capsys, "kb", "search", "x", "--collection", "Bad Name")
    assert code == 1 and "There is no collection 'Bad Name'" in err
