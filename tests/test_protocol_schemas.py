"""docs/schemas/ and docs/asyncapi.yaml: current, and true of the frames on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from django.conf import settings
from jsonschema import Draft202012Validator

from chat.management.commands.protocol_schemas import generated, stale
from chat.protocol import CompleteFrame, ErrorFrame, StreamFrame, Usage, file_contents
from tests.test_protocol_docs import Example, frames_of


def schema(name: str) -> Draft202012Validator:
    path = settings.BASE_DIR / "docs" / "schemas" / name
    document = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def test_the_generated_files_are_current() -> None:
    outdated = stale(generated())
    assert not outdated, f"run `manage.py protocol_schemas`: {outdated} are stale"


@pytest.mark.parametrize("direction", ["client", "server"])
def test_every_documented_frame_is_valid_under_its_direction_schema(direction: str) -> None:
    validator = schema(f"{direction}-frame.json")
    examples: list[Example] = frames_of(direction)
    assert examples
    for example in examples:
        errors = [e.message for e in validator.iter_errors(example.data)]
        assert not errors, f"docs/protocol.md line {example.line}: {errors}"


def test_what_the_server_writes_is_valid_and_its_always_fields_are_required() -> None:
    complete = CompleteFrame(
        session_id="s1",
        seq=7,
        files=file_contents({"a.txt": b"hi", "b.bin": b"\xff"}),
        deleted=[],
        result="done",
        stopped=False,
        usage=Usage(input_tokens=3),
        cost_usd=0.01,
        duration_ms=5,
    ).to_wire()
    assert not list(schema("server/complete.json").iter_errors(complete))
    for field in ("type", "sessionId", "seq", "hashes", "usage"):
        incomplete = {k: v for k, v in complete.items() if k != field}
        assert list(schema("server/complete.json").iter_errors(incomplete)), field
    before_a_session = ErrorFrame(code="INVALID_FRAME", message="no", recoverable=True).to_wire()
    assert before_a_session["sessionId"] is None
    assert not list(schema("server-frame.json").iter_errors(before_a_session))
    stream = StreamFrame(session_id="s1", seq=1, text="x").to_wire()
    assert list(schema("server-frame.json").iter_errors({**stream, "type": "nonsense"}))


def test_a_client_frame_missing_what_the_server_needs_is_invalid() -> None:
    validator = schema("client-frame.json")
    assert not list(validator.iter_errors({"type": "stop", "sessionId": "s1"}))
    assert list(validator.iter_errors({"type": "stop"}))
    assert list(validator.iter_errors({"type": "message", "sessionId": "s1", "message": ""}))
    assert list(validator.iter_errors({"type": "undo", "sessionId": "s1", "turns": 0}))


def test_the_asyncapi_document_refers_only_to_what_it_defines() -> None:
    path = settings.BASE_DIR / "docs" / "asyncapi.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    components = document["components"]
    channel = document["channels"]["chat"]
    assert channel["address"] == "/ws/chat"

    def target(ref: str) -> Any:
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    refs = [m["$ref"] for m in channel["messages"].values()]
    refs += [m["$ref"] for op in document["operations"].values() for m in op["messages"]]
    refs += [m["payload"]["$ref"] for m in components["messages"].values()]
    for ref in refs:
        assert target(ref), ref
    kinds = {(m["name"]) for m in components["messages"].values()}
    assert {"init", "message", "stop", "undo", "ready", "complete", "error"} <= kinds
