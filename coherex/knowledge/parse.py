"""Turn an uploaded file into clean text blocks with their structure (section, page).

The file kind is sniffed from the content (PDF and DOCX by their signatures, text by decoding)
and must agree with the extension: a PDF named `.txt` or a text file named `.pdf` is refused with
a message saying what the content really is. Parsing uses well-kept libraries (pypdf,
python-docx, BeautifulSoup, markdown-it); they are imported lazily so `coherex --help` stays fast.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from coherex.errors import UserError

Kind = Literal["text", "markdown", "html", "pdf", "docx", "csv"]

MIME_TYPES: dict[Kind, str] = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "csv": "text/csv",
}
EXTENSIONS: dict[str, Kind] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".csv": "csv",
}
SUPPORTED = ", ".join(sorted(EXTENSIONS))
_TEXT_KINDS = {"text", "markdown", "html", "csv"}


@dataclass(frozen=True)
class Block:
    """One paragraph-like unit of text, with where it sits in the document."""

    text: str
    section: str = ""  # heading path, "Chapter 1 > Laying Plans"
    page: int | None = None  # 1-based, PDFs only


@dataclass
class ParsedDocument:
    kind: Kind
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.kind]


# ------------------------------------------------------------------ sniffing


def sniff(data: bytes, filename: str) -> Kind:
    """The kind of `data`, checked against the extension of `filename`."""
    ext = PurePath(filename).suffix.lower()
    expected = EXTENSIONS.get(ext)
    content = _content_kind(data)
    if content is None:
        raise UserError(
            f"{filename} is not a supported file: its content is binary and not a PDF or DOCX.",
            hint=f"Supported: {SUPPORTED}.",
        )
    if expected is None:
        # unknown or missing extension: trust the content
        return content if content != "text" else _html_or_text(data)
    if expected in _TEXT_KINDS and content == "text":
        return expected
    if expected == content:
        return content
    what = {"pdf": "a PDF", "docx": "a Word (DOCX) document", "text": "text"}[content]
    raise UserError(
        f"{filename} has the extension {ext} but its content is {what}.",
        hint="Rename the file to match its content, or upload the right file.",
    )


def _content_kind(data: bytes) -> Literal["pdf", "docx", "text"] | None:
    head = data[:1024]
    if head.lstrip(b"\x00\t\r\n ").startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" in z.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
        return None
    return "text" if _decode(data) is not None else None


def _html_or_text(data: bytes) -> Kind:
    head = (_decode(data[:2048]) or "").lstrip().lower()
    return (
        "html"
        if head.startswith(("<!doctype html", "<html")) or re.search(r"<(body|p|div|h1)\b", head)
        else "text"
    )


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        return str(best) if best is not None else None


# ------------------------------------------------------------------ cleaning

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean_text(text: str) -> str:
    """Normalise Unicode, drop control characters, re-join words hyphenated across lines, and
    collapse runs of spaces; keeps newlines (paragraph structure) for the caller."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(lines).strip()


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each on one line (soft line wraps joined)."""
    return [" ".join(p.split("\n")) for p in re.split(r"\n\s*\n", clean_text(text)) if p.strip()]


# ------------------------------------------------------------------ parsers


def detect(data: bytes, filename: str) -> Kind:
    """The kind of a non-empty file (cheap: run it before anything else)."""
    if not data.strip():
        raise UserError(f"{filename} is empty.", hint="Upload a file with some text in it.")
    return sniff(data, filename)


def parse(data: bytes, filename: str, kind: Kind | None = None) -> ParsedDocument:
    """Parse `data` (of `kind`, detected when not given); raises `UserError` for empty,
    unsupported or unreadable files."""
    kind = kind or detect(data, filename)
    stem = PurePath(filename).stem
    if kind == "pdf":
        doc = _parse_pdf(data, filename, stem)
    elif kind == "docx":
        doc = _parse_docx(data, filename, stem)
    else:
        text = _decode(data) or ""
        doc = {"text": _parse_text, "markdown": _parse_markdown, "html": _parse_html, "csv": _parse_csv}[
            kind
        ](text, filename, stem)
    doc.blocks = [b for b in doc.blocks if b.text]
    if not doc.blocks:
        extra = " (is it a scanned image? Text recognition is not supported)" if kind == "pdf" else ""
        raise UserError(f"{filename} contains no text{extra}.")
    return doc


def _parse_text(text: str, filename: str, stem: str) -> ParsedDocument:
    return ParsedDocument("text", stem, [Block(p) for p in _paragraphs(text)])


def _parse_markdown(text: str, filename: str, stem: str) -> ParsedDocument:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(text)
    doc = _parse_html(html, filename, stem)
    return ParsedDocument("markdown", doc.title, doc.blocks)


_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_BLOCKS = [
    "p",
    "li",
    "pre",
    "blockquote",
    "tr",
    "dt",
    "dd",
    "div",
    "section",
    "article",
    "br",
    "table",
    "ul",
    "ol",
    "figcaption",
]
_MARK = "\ue000H"  # marks a heading line while the text is flattened (a private-use character)


def _parse_html(html: str, filename: str, stem: str) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    title = clean_text(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "template", "nav", "svg", "iframe"]):
        tag.decompose()
    for h in soup.find_all(_HEADINGS):
        h.replace_with(f"\n\n{_MARK}{h.name[1]} {h.get_text(' ', strip=True)}\n\n")
    for cell in soup.find_all(["td", "th"]):
        cell.append(" | ")
    for block in soup.find_all(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for para in re.split(r"\n\s*\n", soup.get_text()):
        para = clean_text(" ".join(para.split("\n"))).strip(" |")
        if not para:
            continue
        if para.startswith(_MARK):
            level, heading = int(para[len(_MARK)]), para[len(_MARK) + 2 :].strip()
            path = [(lv, h) for lv, h in path if lv < level] + [(level, heading)]
            title = title or heading
            continue
        blocks.append(Block(para, " > ".join(h for _, h in path)))
    return ParsedDocument("html", title or stem, blocks)


def _parse_csv(text: str, filename: str, stem: str) -> ParsedDocument:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    if not rows:
        return ParsedDocument("csv", stem, [])
    header = [clean_text(c) or f"column {i + 1}" for i, c in enumerate(rows[0])]
    blocks = []
    for row in rows[1:]:
        cells = [
            f"{name}: {clean_text(value)}" for name, value in zip(header, row, strict=False) if value.strip()
        ]
        blocks.append(Block("; ".join(cells)))
    return ParsedDocument("csv", stem, blocks)


def _parse_pdf(data: bytes, filename: str, stem: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UserError(f"{filename} is a password-protected PDF.", hint="Upload an unprotected copy.")
        title = (reader.metadata.title if reader.metadata else None) or stem
        blocks = [
            Block(p, page=i)
            for i, page in enumerate(reader.pages, start=1)
            for p in _paragraphs(page.extract_text() or "")
        ]
    except UserError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise UserError(f"{filename} is not a readable PDF (it may be corrupt or truncated): {exc}") from exc
    return ParsedDocument("pdf", clean_text(str(title)) or stem, blocks)


def _parse_docx(data: bytes, filename: str, stem: str) -> ParsedDocument:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UserError(f"{filename} is not a readable Word document (it may be corrupt): {exc}") from exc
    title = document.core_properties.title or ""
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells = [clean_text(c.text) for c in row.cells]
                blocks.append(Block(" | ".join(c for c in cells if c), " > ".join(h for _, h in path)))
            continue
        text = clean_text(item.text)
        style = item.style.name if item.style is not None else ""
        level = (
            0 if style == "Title" else int(m.group(1)) if (m := re.match(r"Heading (\d)", style)) else None
        )
        if level is not None and text:
            path = [(lv, h) for lv, h in path if lv < level] + [(level, text)]
            title = title or text
        elif text:
            blocks.append(Block(" ".join(text.split("\n")), " > ".join(h for _, h in path)))
    return ParsedDocument("docx", title or stem, blocks)
