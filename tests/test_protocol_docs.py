"""docs/protocol.md agrees with the code: error codes, frame sections, fields and examples.

The models in ``chat.protocol`` and the error classes are the source of truth; these
tests fail when the document misses (or invents) a code, a frame or a field, or when
one of its examples would not be accepted by the models.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

import chat
import workspaces
from chat.exceptions import ChatError
from chat.protocol import (
    CLIENT_FRAMES,
    PROTOCOL_VERSION,
    SERVER_FRAMES,
    CompleteFrame,
    ErrorFrame,
    FrameLimits,
    ServerFrame,
    Usage,
    WireModel,
    parse_client_frame,
)
from workspaces.exceptions import WorkspaceError

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "protocol.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
SOURCE_DIRS = ("chat", "workspaces", "dashboard_ai")

# `code = "X"`, `code="X"` and `code: str = "X"`; not `code == "X"`.
CODE_LITERAL_RE = re.compile(r"""\bcode\s*(?::\s*[^=\n]+?)?=\s*["']([A-Z][A-Z0-9_]*)["']""")
HEADING_RE = re.compile(r"^(#{1,6}) +(.+?) *$", re.MULTILINE)
FENCE_RE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TABLE_CODE_RE = re.compile(r"^\| *`([A-Z][A-Z0-9_]*)` *\| *([^|]+?) *\|", re.MULTILINE)


# --- reading the document ------------------------------------------------------


def sections(text: str) -> dict[str, str]:
    """Heading text -> body, up to the next heading of the same or a higher level."""
    headings = list(HEADING_RE.finditer(text))
    # Headings inside fenced blocks are not headings.
    fences = [(m.start(), m.end()) for m in FENCE_RE.finditer(text)]
    headings = [h for h in headings if not any(a <= h.start() < b for a, b in fences)]
    result = {}
    for i, heading in enumerate(headings):
        level = len(heading.group(1))
        end = len(text)
        for later in headings[i + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        result[heading.group(2)] = text[heading.end() : end]
    return result


SECTIONS = sections(DOC)


def error_table(text: str = DOC) -> dict[str, str]:
    """Code -> its "recoverable" cell, from the table of the "Error codes" section."""
    body = sections(text).get("Error codes")
    assert body is not None, "docs/protocol.md has no '## Error codes' section"
    rows = {m.group(1): m.group(2).strip("* ").lower() for m in TABLE_CODE_RE.finditer(body)}
    assert rows, "the 'Error codes' section has no table rows of the form | `CODE` | yes/no |"
    return rows


@dataclass(frozen=True)
class Example:
    """One example frame of the document."""

    line: int
    direction: str  # "client", "server" or "" (a ```json block: decided by its type)
    data: Any

    @property
    def id(self) -> str:
        kind = self.data.get("type") if isinstance(self.data, dict) else type(self.data).__name__
        return f"line{self.line}-{kind}"


def examples(text: str = DOC) -> list[Example]:
    """Every ```json block, and every `→`/`←` line of the ```frames blocks."""
    found = []
    for fence in FENCE_RE.finditer(text):
        lang, body = fence.group(1), fence.group(2)
        first_line = text.count("\n", 0, fence.start()) + 2
        if lang == "json":
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                pytest.fail(f"docs/protocol.md line {first_line}: invalid JSON example: {exc}")
            found.append(Example(first_line, "", data))
        elif lang == "frames":
            for offset, line in enumerate(body.splitlines()):
                arrow, _, rest = line.partition(" ")
                if arrow not in ("→", "←"):
                    continue
                try:
                    data = json.loads(rest)
                except json.JSONDecodeError as exc:
                    pytest.fail(f"docs/protocol.md line {first_line + offset}: invalid JSON: {exc}")
                direction = "client" if arrow == "→" else "server"
                found.append(Example(first_line + offset, direction, data))
    return found


EXAMPLES = examples()


# --- reading the code ----------------------------------------------------------


def _import_all(package: Any) -> None:
    """Import every module of ``package`` (but migrations), so every subclass exists.

    ``admin`` modules are skipped: they import only when ``ADMIN_ENABLED`` installs the admin.
    """
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" not in info.name and not info.name.endswith(".admin"):
            importlib.import_module(info.name)


ErrorClass = type[ChatError] | type[WorkspaceError]


def error_classes() -> list[ErrorClass]:
    """The error roots and every subclass of them, recursively."""
    _import_all(chat)
    _import_all(workspaces)
    found: list[ErrorClass] = []
    pending: list[ErrorClass] = [ChatError, WorkspaceError]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def codes_in_source() -> set[str]:
    """Codes assigned as string literals anywhere in the project's Python code."""
    codes = set()
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            codes.update(CODE_LITERAL_RE.findall(path.read_text(encoding="utf-8")))
    return codes


ERROR_CLASSES = error_classes()
SENT_CODES = sorted({cls.code for cls in ERROR_CLASSES} | codes_in_source())


def wire_names(model: type[BaseModel]) -> list[str]:
    """The camelCase names of a model's fields on the wire."""
    return [field.alias or to_camel(name) for name, field in model.model_fields.items()]


def nested_models(model: type[BaseModel]) -> set[type[WireModel]]:
    """Wire models used inside ``model``'s fields (e.g. ``Usage``, ``EncodedFile``)."""
    found: set[type[WireModel]] = set()
    pending = [field.annotation for field in model.model_fields.values()]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, WireModel):
            if annotation not in found:
                found.add(annotation)
                pending.extend(f.annotation for f in annotation.model_fields.values())
        else:
            pending.extend(typing.get_args(annotation))
    return found


def frame_type(model: type[BaseModel]) -> str:
    if issubclass(model, ServerFrame):
        return str(model.model_fields["type"].default)
    return next(name for name, client in CLIENT_FRAMES.items() if client is model)


SERVER_BY_TYPE = {frame_type(model): model for model in SERVER_FRAMES}
ALL_FRAMES = [*SERVER_FRAMES, *CLIENT_FRAMES.values()]


def frame_section(model: type[BaseModel]) -> str:
    heading = f"`{frame_type(model)}`"
    assert heading in SECTIONS, f"docs/protocol.md has no '### {heading}' section"
    return SECTIONS[heading]


# --- error codes ---------------------------------------------------------------


def test_the_code_scan_finds_the_codes() -> None:
    from_source = codes_in_source()
    assert {"INVALID_JSON", "SESSION_BUSY", "INVALID_PATH", "MODEL_ERROR"} <= from_source
    assert {cls.code for cls in ERROR_CLASSES} <= from_source
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert {"ChatError", "SessionBusy", "WorkspaceError", "InvalidContent"} <= names


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ('    code = "SESSION_BUSY"', ["SESSION_BUSY"]),
        ('    code: str = "WORKSPACE_ERROR"', ["WORKSPACE_ERROR"]),
        ('ErrorFrame(code="LATE_CODE", message="x", recoverable=True)', ["LATE_CODE"]),
        ("raise Oops(code='SINGLE_QUOTED')", ["SINGLE_QUOTED"]),
        ('if error.code == "MODEL_ERROR":', []),
        ('error_code = "NOT_A_CODE_FIELD"', []),
    ],
)
def test_the_source_scan_pattern(line: str, found: list[str]) -> None:
    assert CODE_LITERAL_RE.findall(line) == found


@pytest.mark.parametrize("code", SENT_CODES)
def test_every_error_code_is_in_the_error_table(code: str) -> None:
    assert code in error_table(), f"error code `{code}` is missing from the table in {DOC_PATH}"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_the_table_says_whether_each_error_is_recoverable(cls: ErrorClass) -> None:
    sent = getattr(cls, "recoverable", True)  # what chat.protocol.error_frame_for sends
    documented = error_table().get(cls.code)
    assert documented in ("yes", "no"), f"`{cls.code}`: recoverable cell is {documented!r}"
    assert (documented == "yes") is sent, f"`{cls.code}` is sent with recoverable={sent}"


def test_the_error_table_lists_no_code_the_server_does_not_have() -> None:
    assert set(error_table()) - set(SENT_CODES) == set()


def test_a_missing_code_would_be_noticed() -> None:
    without = DOC.replace("| `SESSION_BUSY` |", "| SESSION BUSY |")
    assert "SESSION_BUSY" in error_table() and "SESSION_BUSY" not in error_table(without)


# --- frame sections ------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_FRAMES, ids=lambda model: model.__name__)
def test_every_frame_has_a_section_naming_each_wire_field(model: type[BaseModel]) -> None:
    section = frame_section(model)
    missing = [name for name in wire_names(model) if f"`{name}`" not in section]
    assert not missing, f"section `{frame_type(model)}` does not name the fields {missing}"


@pytest.mark.parametrize("model", ALL_FRAMES, ids=lambda model: model.__name__)
def test_every_frame_section_has_an_example_of_its_type(model: type[BaseModel]) -> None:
    section = frame_section(model)
    types = [
        json.loads(body).get("type")
        for lang, body in FENCE_RE.findall(section)
        if lang == "json" and body.lstrip().startswith("{")
    ]
    assert frame_type(model) in types, f"section `{frame_type(model)}` has no ```json example"


def test_fields_of_nested_wire_models_are_documented() -> None:
    nested = set().union(*(nested_models(model) for model in ALL_FRAMES))
    assert nested, "expected nested wire models (Usage, EncodedFile)"
    missing = [
        f"{model.__name__}.{name}"
        for model in nested
        for name in wire_names(model)
        if f"`{name}`" not in DOC
    ]
    assert not missing


def test_the_documented_version_is_the_protocol_version() -> None:
    assert f"**Protocol version {PROTOCOL_VERSION}**" in DOC
    readies = [
        e.data for e in EXAMPLES if isinstance(e.data, dict) and e.data.get("type") == "ready"
    ]
    assert readies and all(r["protocolVersion"] == PROTOCOL_VERSION for r in readies)


# --- examples ------------------------------------------------------------------


def test_the_document_has_examples_of_both_directions() -> None:
    typed = [e for e in EXAMPLES if isinstance(e.data, dict) and "type" in e.data]
    assert {e.data["type"] for e in typed} >= set(SERVER_BY_TYPE) | set(CLIENT_FRAMES)


def direction_of(example: Example) -> str:
    """``client`` or ``server``: the arrow of a sequence line, else the frame's type."""
    if example.direction:
        return example.direction
    kind = example.data.get("type") if isinstance(example.data, dict) else None
    return "server" if kind in SERVER_BY_TYPE else "client" if kind in CLIENT_FRAMES else ""


def frames_of(direction: str) -> list[Example]:
    return [example for example in EXAMPLES if direction_of(example) == direction]


def test_every_example_with_a_type_is_a_known_frame_of_its_direction() -> None:
    for example in EXAMPLES:
        typed = isinstance(example.data, dict) and "type" in example.data
        if not (typed or example.direction):
            continue  # e.g. the /health response
        assert typed, f"line {example.line}: a frame is a JSON object with a type"
        known = SERVER_BY_TYPE if direction_of(example) == "server" else CLIENT_FRAMES
        kind = example.data["type"]
        assert kind in known, f"line {example.line}: no {direction_of(example)} frame {kind!r}"


@pytest.mark.parametrize("example", frames_of("server"), ids=lambda e: e.id)
def test_server_examples_validate_against_their_model(example: Example) -> None:
    model = SERVER_BY_TYPE[example.data["type"]]
    frame = model.model_validate(example.data)
    unknown = set(example.data) - set(wire_names(model))
    assert not unknown, f"line {example.line}: fields the model does not have: {unknown}"
    assert "sessionId" in example.data and "seq" in example.data
    if isinstance(frame, ErrorFrame):
        assert frame.code in error_table(), f"line {example.line}: undocumented code"
    if isinstance(frame, CompleteFrame):
        unknown = set(example.data["usage"]) - set(wire_names(Usage))
        assert not unknown, f"line {example.line}: usage fields the model does not have: {unknown}"


@pytest.mark.parametrize("example", frames_of("client"), ids=lambda e: e.id)
def test_client_examples_parse(example: Example, settings: Any) -> None:
    """``settings``: parse_client_frame reads CHAT_MAX_MESSAGE_CHARS."""
    settings.CHAT_MAX_MESSAGE_CHARS = 100_000  # the documented default
    frame = parse_client_frame(json.dumps(example.data), FrameLimits.from_settings())
    assert isinstance(frame, CLIENT_FRAMES[example.data["type"]])
    unknown = set(example.data) - set(wire_names(type(frame)))
    assert not unknown, f"line {example.line}: fields the model does not have: {unknown}"
