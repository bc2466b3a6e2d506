"""The wire protocol as JSON Schema and AsyncAPI 3, generated from :mod:`chat.protocol`.

The pydantic models are the source of truth (``docs/protocol.md`` describes them in
prose); ``manage.py protocol_schemas`` writes what this module builds to
``docs/schemas/`` and ``docs/asyncapi.yaml``, and a test fails when the files are
stale. A frontend team can generate a typed client from either.

Client frames are described as they are read (``validation``: what the server
accepts; fields it ignores are not listed), server frames as they are written
(``serialization``); every property carries its camelCase wire name. A server frame
always carries ``type``, ``sessionId`` (``null`` before a session) and every field
whose value is not ``None`` (:meth:`chat.protocol.ServerFrame.to_wire`), so those are
marked required even where the model has a default: a client may rely on them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from chat.protocol import CLIENT_FRAMES, PROTOCOL_VERSION, SERVER_FRAMES, Usage, WireModel

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_REF = "#/components/schemas/{model}"

Direction = Literal["client", "server"]
DIRECTIONS: tuple[Direction, ...] = ("client", "server")


def _frames(direction: Direction) -> dict[str, type[WireModel]]:
    """The frame models of one direction, by their ``type``."""
    if direction == "client":
        return dict(CLIENT_FRAMES)
    return {str(model.model_fields["type"].default): model for model in SERVER_FRAMES}


#: What the server writes: its frames and the models only they hold.
WRITTEN: tuple[type[WireModel], ...] = (*SERVER_FRAMES, Usage)


def _always_written(model: type[WireModel]) -> list[str]:
    """The wire names of the fields ``model`` always carries when the server writes it."""
    names = [
        field.alias or name
        for name, field in model.model_fields.items()
        if field.is_required() or field.default is not None or field.default_factory
    ]
    return names + (["sessionId"] if "sessionId" not in names and "type" in names else [])


def _mark_written(schemas: dict[str, Any]) -> None:
    """Mark every always-written field of the written models required, by model title."""
    for model in WRITTEN:
        found = schemas.get(model.__name__)
        if found is not None:
            found["required"] = _always_written(model)


def _mode(direction: Direction) -> JsonSchemaMode:
    return "validation" if direction == "client" else "serialization"


def _union(direction: Direction) -> TypeAdapter[Any]:
    models = tuple(_frames(direction).values())
    frame: Any = Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(frame)


def frame_schemas() -> dict[str, dict[str, Any]]:
    """Standalone JSON Schemas by file name: one per frame and one per direction (any
    frame of it, told apart by ``type``)."""
    schemas: dict[str, dict[str, Any]] = {}
    for direction in DIRECTIONS:
        mode = _mode(direction)
        for frame_type, model in _frames(direction).items():
            schema = model.model_json_schema(by_alias=True, mode=mode)
            _mark_written({model.__name__: schema, **schema.get("$defs", {})})
            schemas[f"{direction}/{frame_type}.json"] = _standalone(schema)
        union = _union(direction).json_schema(by_alias=True, mode=mode)
        _mark_written(union.get("$defs", {}))
        union["title"] = f"{direction.capitalize()}Frame"
        schemas[f"{direction}-frame.json"] = _standalone(union)
    return schemas


def _standalone(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **schema}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``/ws/chat``: one channel, a message per frame."""
    # One call for both directions: a model whose schema differs when read and when
    # written (none today) gets two names instead of one overwriting the other.
    frames = [(d, t, m) for d in DIRECTIONS for t, m in _frames(d).items()]
    refs, definitions = TypeAdapter.json_schemas(
        [((d, t), _mode(d), TypeAdapter(m)) for d, t, m in frames],
        by_alias=True,
        ref_template=ASYNCAPI_REF,
    )
    messages: dict[str, Any] = {}
    by_direction: dict[str, list[str]] = {"client": [], "server": []}
    for direction, frame_type, model in frames:
        name = f"{direction}.{frame_type}"
        messages[name] = {
            "name": frame_type,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": refs[((direction, frame_type), _mode(direction))],
        }
        by_direction[direction].append(name)
    schemas = dict(sorted(definitions.get("$defs", {}).items()))
    _mark_written(schemas)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "dashboard-ai chat",
            "version": str(PROTOCOL_VERSION),
            "description": (
                "Chat with Claude about a dashboard's files over one WebSocket. Generated "
                "from chat/protocol.py by `manage.py protocol_schemas`; docs/protocol.md "
                "explains each frame, the error codes and the reconnect rules."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            "chat": {
                "address": "/ws/chat",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receiveClientFrames": _operation(
                "receive",
                "Frames the browser sends: init, message, stop, undo.",
                by_direction["client"],
            ),
            "sendServerFrames": _operation(
                "send",
                "Frames the server sends: ready, events of a turn, its end, errors.",
                by_direction["server"],
            ),
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def _operation(action: str, summary: str, names: list[str]) -> dict[str, Any]:
    """An AsyncAPI operation of the chat channel over the messages ``names``."""
    return {
        "action": action,
        "summary": summary,
        "channel": {"$ref": "#/channels/chat"},
        "messages": [{"$ref": f"#/channels/chat/messages/{name}"} for name in names],
    }
