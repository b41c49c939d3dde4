"""Knowledge-base fixtures: the real embedding model (loaded once), a small public-domain corpus,
and a PDF and a DOCX made with real libraries at test time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from coherex.knowledge import embed

FIXTURES = Path(__file__).parent / "fixtures"

# Aesop's Fables, translated by George Fyler Townsend (1867): public domain.
FABLES_PDF = [
    (
        "The Hare and the Tortoise",
        "A Hare one day ridiculed the short feet and slow pace of the Tortoise, who replied, laughing: "
        '"Though you be swift as the wind, I will beat you in a race." The Hare, believing her assertion to '
        "be simply impossible, assented to the proposal. On the day appointed for the race the two started "
        "together. "
        "The Tortoise never for a moment stopped, but went on with a slow but steady pace straight to the "
        "end of "
        "the course. The Hare, lying down by the wayside, fell fast asleep. At last waking up, and moving "
        "as fast as he could, he saw the Tortoise had reached the goal, and was comfortably dozing after her "
        "fatigue. Slow but steady wins the race.",
    ),
    (
        "The Fox and the Grapes",
        "A famished Fox saw some clusters of ripe black grapes hanging from a trellised vine. She resorted "
        "to all "
        "her tricks to get at them, but wearied herself in vain, for she could not reach them. At last she "
        "turned "
        'away, hiding her disappointment and saying: "The Grapes are sour, and not ripe as I thought."',
    ),
]
FABLES_DOCX = [
    (
        "The Ants and the Grasshopper",
        "The ants were spending a fine winter's day drying grain collected in the summertime. A Grasshopper, "
        "perishing with famine, passed by and earnestly begged for a little food. The Ants inquired of him, "
        '"Why did you not treasure up food during the summer?" He replied, "I had not leisure enough. I '
        "passed "
        'the days in singing." They then said in derision: "If you were foolish enough to sing all the '
        "summer, "
        'you must dance supperless to bed in the winter."',
    ),
    (
        "The Shepherd's Boy and the Wolf",
        "A Shepherd-boy, who watched a flock of sheep near a village, brought out the villagers three or "
        "four "
        'times by crying out, "Wolf! Wolf!" and when his neighbors came to help him, laughed at them for '
        "their pains. The Wolf, however, did truly come at last. The Shepherd-boy cried out in an agony of "
        "terror, but "
        "no one paid any heed to his cries. A liar will not be believed, even when he speaks the truth.",
    ),
]


def make_pdf(path: Path, fables: Sequence[tuple[str, str]] = FABLES_PDF) -> Path:
    """A real PDF, one fable per page, made with fpdf2."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Fables of Aesop")
    for title, text in fables:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def make_docx(path: Path, fables: Sequence[tuple[str, str]] = FABLES_DOCX) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "More Fables of Aesop"
    for title, text in fables:
        document.add_heading(title, level=1)
        document.add_paragraph(text)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Fable", "Moral"
    table.cell(1, 0).text, table.cell(1, 1).text = "The Shepherd's Boy", "Liars are not believed"
    document.save(str(path))
    return path


class CountingEmbedder:
    """The real model, remembering vectors it already computed this session (tests embed the same
    corpus many times) and counting the texts it was really asked to embed."""

    def __init__(self, inner: embed.Embedder):
        self.inner = inner
        self.model = inner.model
        self.cache: dict[str, list[float]] = {}
        self.calls: list[int] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=True))
        return [self.cache[t] for t in texts]


@pytest.fixture(scope="session")
def real_embedder() -> CountingEmbedder:
    return CountingEmbedder(embed._local())


@pytest.fixture
def embedder(real_embedder: CountingEmbedder, monkeypatch) -> CountingEmbedder:
    monkeypatch.setattr(embed, "_local", lambda: real_embedder)
    real_embedder.calls.clear()
    return real_embedder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("corpus")
    files = sorted(FIXTURES.iterdir())
    return [*files, make_pdf(tmp / "fables.pdf"), make_docx(tmp / "more_fables.docx")]


@pytest.fixture
async def library(db, two_teams, corpus: list[Path], embedder):
    """Team alpha with the corpus in its collection "library"."""
    from coherex.knowledge import ingest_file

    alpha, _ = two_teams
    for path in corpus:
        await ingest_file(db, alpha.identity, alpha.team_id, "library", path)
    return alpha


@pytest.fixture(autouse=True)
def fresh_settings():
    """Tests here change COHEREX_* variables: never let one test's settings leak into the next."""
    from coherex.settings import reset_settings_cache

    reset_settings_cache()
    yield
    reset_settings_cache()
