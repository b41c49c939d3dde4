"""Reading and writing spec files: YAML and JSON, both ways, safely and bounded.

A hostile file is refused before it can cost much: its size is checked before parsing, binary
content is refused, nesting depth is limited while composing, and YAML aliases are counted by the
number of nodes they would expand to (billion laughs stops after a few thousand nodes, long before
anything is expanded). YAML booleans follow YAML 1.2 (`true`/`false` only: `country: NO` stays a
string), dates stay strings and duplicate keys are errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from coherex.errors import UserError

Format = Literal["yaml", "json"]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50
#: nodes a document may have once aliases are expanded
MAX_NODES = 100_000


class SpecFormatError(UserError):
    """The file is not a readable spec document (too big, binary, bad syntax, ...)."""

    def __init__(self, message: str, *, location: str = "", hint: str | None = None):
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location
        self.problem = message


class _Refused(yaml.MarkedYAMLError):
    pass


if yaml.__with_libyaml__:
    from yaml._yaml import CParser  # what yaml.cyaml builds its loaders on

    class _SafeLoader(
        yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver, CParser
    ):
        """libyaml parses (7x faster); composing stays in Python, where the limits below are."""

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml
    _SafeLoader = yaml.SafeLoader  # type: ignore[misc,assignment]  # the same interface, in Python


class _BoundedLoader(_SafeLoader):
    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> node count once aliases are expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark: Any = event.start_mark if event is not None else None  # libyaml's Mark or PyYAML's
        is_alias = self.check_event(yaml.AliasEvent)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if is_alias:  # the node it names is counted again by its parent; it must be complete
            if id(node) not in self._sizes:
                raise _Refused(problem="an alias refers to its own anchor (recursive)", problem_mark=mark)
        else:
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = []
            size = 1 + sum(self._sizes[id(child)] for child in children)
            if size > MAX_NODES:
                raise _Refused(
                    problem=f"aliases expand to more than {MAX_NODES} values (an alias bomb?)",
                    problem_mark=mark,
                )
            self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise _Refused(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 booleans; dates and times stay strings (they must round-trip as written).
_BoundedLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def guess_format(name: str | Path | None, text: str) -> Format:
    suffix = Path(name).suffix.lower() if name else ""
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return "json" if text.lstrip().startswith("{") else "yaml"


def decode(data: bytes | str) -> str:
    """Check size and encoding before any parsing."""
    try:
        size = len(data.encode() if isinstance(data, str) else data)
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "\ud800" in a JSON string
        raise SpecFormatError(
            f"text is not valid Unicode (an unpaired surrogate at character {exc.start})"
        ) from None
    if size > MAX_BYTES:
        raise SpecFormatError(
            f"file is too large ({size:,} bytes; a spec may have at most {MAX_BYTES:,})",
            hint="specs are small text files; keep large data in a knowledge collection or a data source",
        )
    if isinstance(data, bytes):
        if b"\x00" in data:
            raise SpecFormatError("file is binary (contains NUL bytes), not a YAML or JSON spec")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecFormatError(
                f"file is not valid UTF-8 text (byte {exc.start}); is it a binary file?"
            ) from None
    elif "\x00" in data:
        raise SpecFormatError("file is binary (contains NUL characters), not a YAML or JSON spec")
    return data


def parse(data: bytes | str, fmt: Format | None = None, name: str | Path | None = None) -> dict[str, Any]:
    """Parse a spec document into plain data (a mapping), or raise SpecFormatError."""
    text = decode(data)
    if not text.strip():
        raise SpecFormatError(
            "file is empty", hint="start from a template: `coherex templates show email-digest`"
        )
    fmt = fmt or guess_format(name, text)
    value = _parse_json(text) if fmt == "json" else _parse_yaml(text)
    if value is None:
        raise SpecFormatError("file has no content (only comments or an empty document)")
    if not isinstance(value, dict):
        found = "a list" if isinstance(value, list) else f"a single {type(value).__name__} value"
        raise SpecFormatError(
            "the document must be a mapping (apiVersion: ..., kind: ..., metadata: ..., spec: ...), found "
            f"{found}"
        )
    return value


def _parse_yaml(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecFormatError(problem, location=where) from None
    except yaml.YAMLError as exc:  # reader errors (control characters) carry no mark
        raise SpecFormatError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise SpecFormatError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


#: plain text followed by ` #word` on its line: YAML reads the rest as a comment (`#sales` lost)
_COMMENT_AFTER_TEXT = re.compile(r"[^\s'\"]\s+#\S")


def comment_cuts(text: str) -> list[tuple[int, list[int | str], str]]:
    """Unquoted strings that a `#word` on the same line cut short (YAML takes ` #…` as a comment):
    (line number, the value's place as keys and indexes, the value as read). `# note` with a space
    reads as an intended comment and is not reported. Only for a document `parse` accepted."""
    if not _COMMENT_AFTER_TEXT.search(text):
        return []
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return []
    finally:
        loader.dispose()
    lines = text.splitlines()
    cuts: list[tuple[int, list[int | str], str]] = []
    stack: list[tuple[Any, list[int | str]]] = [(root, [])]
    while stack:
        node, where = stack.pop()
        if isinstance(node, yaml.MappingNode):
            stack.extend(
                (value, [*where, str(key.value)])
                for key, value in node.value
                if isinstance(key, yaml.ScalarNode)
            )
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*where, i]) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.ScalarNode) and not node.style and node.tag.endswith(":str"):
            end = node.end_mark
            rest = lines[end.line][end.column :] if end.line < len(lines) else ""
            if re.match(r"\s+#\S", rest):
                cuts.append((end.line + 1, where, str(node.value)))
    return sorted(cuts, key=lambda cut: cut[0])


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json(text: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise SpecFormatError(exc.msg, location=f"line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:
        raise SpecFormatError(str(exc)) from None
    except RecursionError:
        raise SpecFormatError(f"nested deeper than {MAX_DEPTH} levels") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecFormatError(f"nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)  # indent list items under their key


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None  # instructions read as written
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
