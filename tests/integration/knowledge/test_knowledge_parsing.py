"""Parsing and chunking as a reader of the results would notice them (no database needed)."""

from __future__ import annotations

from pathlib import Path

from coherex.knowledge.chunk import MAX_CHARS, chunk_blocks
from coherex.knowledge.parse import parse

FIXTURES = Path(__file__).parent / "fixtures"


def test_html_keeps_text_and_headings_but_not_scripts_or_navigation():
    doc = parse((FIXTURES / "art_of_war.html").read_bytes(), "art_of_war.html")
    text = " ".join(b.text for b in doc.blocks)
    assert doc.title == "The Art of War (Sun Tzu, translated by Lionel Giles)"
    assert "All warfare is based on deception." in text
    assert "console.log" not in text and "Home" not in text and "font-family" not in text
    assert {b.section for b in doc.blocks} >= {"The Art of War > II. Waging War"}


def test_long_text_is_cut_at_sentences_with_overlap_and_stable_ids():
    sentences = [f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120)]
    data = ("\n\n".join(" ".join(sentences[i : i + 10]) for i in range(0, 120, 10))).encode()
    chunks = chunk_blocks(parse(data, "long.txt").blocks)
    assert len(chunks) > 3 and all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(c.text.rstrip().endswith(".") for c in chunks)  # never cut mid-sentence
    for before, after in zip(chunks, chunks[1:], strict=False):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert last_sentence in after.text  # the boundary is covered by the next chunk too
    again = chunk_blocks(parse(data, "long.txt").blocks)
    assert [c.content_hash for c in again] == [c.content_hash for c in chunks]


def test_csv_rows_keep_their_column_names():
    doc = parse((FIXTURES / "planets.csv").read_bytes(), "planets.csv")
    assert doc.blocks[3].text.startswith("planet: Mars; moons: 2;")
