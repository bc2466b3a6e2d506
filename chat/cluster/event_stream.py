"""A session's events in a Redis stream, shared by every server that has its sockets.

The owner numbers each event (:meth:`RedisEventStream.stamp`) and appends it as the
stream entry ``<seq>-0`` (:meth:`~RedisEventStream.publish`), fenced by its lease.
Every server with sockets of the session, the owner included, runs one reader that
follows the stream and hands each entry to its sockets, so all sockets of a session
see the same events in the same order whichever server they are on.

The stream keeps the last ``REPLAY_BUFFER_EVENTS`` events and about
``REPLAY_BUFFER_BYTES`` of them, and goes :data:`STREAM_TTL_SECONDS` after its last
event, so a session nobody uses does not keep its events in Redis for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from django.conf import settings
from redis.asyncio import Redis

from chat.cluster import keys
from chat.cluster.connection import UNREACHABLE
from chat.outage import Outage
from chat.session.event_stream import Numbering, Send
from chat.session.ownership import Lease, LeaseLost

logger = logging.getLogger("dashboard_ai.chat")

#: How long a stream outlives its last event (a day): replay needs the events of a
#: session that is in use, not of one left for longer.
STREAM_TTL_SECONDS = 24 * 60 * 60

#: How long one read waits for new entries: well under the client's 15 s socket
#: timeout (chat.cluster.connection), so a quiet stream never looks like a dead Redis.
READ_BLOCK_MS = 5000

_WRITTEN, _NOT_OWNER, _NOT_NEWER = 1, 0, -1

# KEYS: lease, stream. ARGV: lease value, entry id, frame, max events, max bytes, ttl ms.
# Each entry carries ``end``: the bytes of every frame the stream has taken, through
# this one. So the bytes held are the top's ``end`` less what came before the oldest
# entry, with no second key that could disagree with the stream.
_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local function field(entry, name)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local total = #ARGV[3] + (top and tonumber(field(top, 'end')) or 0)
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', ARGV[4], ARGV[2],
  'frame', ARGV[3], 'end', total)
if type(added) == 'table' and added.err then return -1 end
while redis.call('XLEN', KEYS[2]) > 1 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local before = tonumber(field(oldest, 'end')) - #field(oldest, 'frame')
  if total - before <= tonumber(ARGV[5]) then break end
  redis.call('XDEL', KEYS[2], oldest[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""


#: Stream entries as redis-py returns them: ``[(b"<seq>-0", {b"frame": ..., b"end": ...})]``
#: (its annotations allow every reply shape of every protocol version).
Entries = Any


def _seq_of(entry_id: bytes) -> int:
    """The seq of a stream entry (ids are ``<seq>-0``)."""
    return int(entry_id.split(b"-", 1)[0])


def _decoded(entries: Entries) -> list[tuple[int, dict[str, Any]]]:
    """Stream entries as (seq, event)."""
    return [(_seq_of(entry_id), json.loads(fields[b"frame"])) for entry_id, fields in entries]


class RedisEventStream(Numbering):
    """The events of one session on this server: numbered here if it owns the
    session, read from the session's Redis stream for the sockets attached here."""

    def __init__(self, session_id: str, redis: Redis) -> None:
        self.session_id = session_id
        self.seq = 0
        self._redis = redis
        self._key = keys.stream_key(session_id)
        self._lease: Lease | None = None
        self._append = redis.register_script(_APPEND)
        # Each attached socket with the seq of the last event it was sent.
        self._sockets: dict[Send, int] = {}
        # The seq the reader has taken from the stream; every attached socket is at or
        # past it, so the reader owes each socket exactly the entries after its own seq.
        self._read_seq = 0
        self._reader: asyncio.Task[None] | None = None

    async def own(self, lease: Lease, stored_seq: int) -> None:
        """Number after the newest of ``stored_seq``, the stream's last event and what
        this server has seen; :meth:`publish` is fenced by ``lease`` from now on."""
        top: Entries = await self._redis.xrevrange(self._key, count=1)
        newest = _seq_of(top[0][0]) if top else 0
        self.seq = max(self.seq, stored_seq, newest)
        self._lease = lease

    async def replay(self, after: int) -> list[dict[str, Any]] | None:
        """Every event after seq ``after``, from the stream; ``None`` unless the stream
        holds all of them (some were trimmed, the stream expired or was lost, or
        ``after`` is beyond the newest event)."""
        events, newest = await self._held_after(after)
        if not events:
            return [] if after == (self.seq if newest is None else newest) else None
        if [seq for seq, _ in events] != list(range(after + 1, after + 1 + len(events))):
            return None
        return [event for _, event in events]

    async def publish(self, event: dict[str, Any]) -> None:
        """Append the stamped ``event`` to the stream (the readers send it on).

        Raises :class:`LeaseLost`, writing nothing, when the lease given to :meth:`own`
        is not the session's lease in Redis, or the stream already holds this seq or a
        later one (another owner has written since).
        """
        if self._lease is None:
            raise LeaseLost(f"this server does not own session {self.session_id}")
        seq = event["seq"]
        written = await self._append(
            keys=[keys.lease_key(self.session_id), self._key],
            args=[
                keys.lease_value(self._lease.server_id, self._lease.token),
                f"{seq}-0",
                json.dumps(event, ensure_ascii=False),
                settings.REPLAY_BUFFER_EVENTS,
                settings.REPLAY_BUFFER_BYTES,
                STREAM_TTL_SECONDS * 1000,
            ],
        )
        if written == _NOT_OWNER:
            raise LeaseLost(f"lease {self._lease.token} on {self.session_id} is not ours")
        if written == _NOT_NEWER:
            raise LeaseLost(f"session {self.session_id} already has an event at or after {seq}")

    async def attach(self, send: Send, after: int) -> None:
        """Send ``send`` every event after seq ``after`` that the stream holds, exactly
        once and in order, then every later one as the reader takes it.

        The socket catches up from the stream itself until it is at or past the
        reader, and joins the reader with no await in between: from then on the
        reader sends it the entries after its own seq, so nothing comes twice and
        nothing is skipped, whether the reader was behind ``after`` or moved on
        during the catch-up.
        """
        cursor = after
        while True:
            caught, _ = await self._held_after(cursor)
            for seq, event in caught:
                await send(event)
                cursor = seq
            if cursor >= self._read_seq:
                break
            if not caught:  # the reader took entries the stream no longer has (lost)
                cursor = self._read_seq
                break
        self._sockets[send] = cursor
        if self._reader is None:
            # Nothing older is owed to anyone; and never past the newest event known,
            # even if ``after`` claims more: later sockets must not miss what comes.
            self._read_seq = min(cursor, self.seq)
            self._reader = asyncio.create_task(self._read(), name=f"events:{self.session_id}")

    async def _held_after(self, after: int) -> tuple[list[tuple[int, dict[str, Any]]], int | None]:
        """The stream's entries after seq ``after`` and the seq of its newest entry
        (``None`` with no stream), read at one moment; :attr:`seq` learns the newest."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self._key, min=f"{max(after, 0) + 1}")
            pipe.xrevrange(self._key, count=1)
            held, top = await pipe.execute()
        newest = _seq_of(top[0][0]) if top else None
        if newest is not None:
            self.seq = max(self.seq, newest)
        return _decoded(held), newest

    def detach(self, send: Send) -> None:
        """Stop sending to ``send``; the reader stops by itself once no socket is left."""
        self._sockets.pop(send, None)

    @property
    def attended(self) -> bool:
        """Whether any socket of this server receives the events."""
        return bool(self._sockets)

    async def close(self) -> None:
        """Stop the reader."""
        self._sockets.clear()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self) -> None:
        """Follow the stream while sockets are attached, sending each entry on.

        Redis going away is logged once; the reader retries with backoff and goes on
        from the last entry it took.
        """
        outage = Outage("reading session events from Redis", sessionId=self.session_id)
        while self._sockets:
            try:
                reply: Entries = await self._redis.xread(
                    {self._key: f"{self._read_seq}-0"}, block=READ_BLOCK_MS
                )
                outage.over()
                for _, entries in reply:
                    for seq, event in _decoded(entries):
                        await self._deliver(seq, event)
            except UNREACHABLE as exc:
                await outage.wait(exc)
            except Exception as exc:  # a bad entry: log it and read on, never go silent
                logger.exception(
                    "reading session events failed", extra={"sessionId": self.session_id}
                )
                await outage.wait(exc)
        self._reader = None  # no await since the check: an attach now starts a new one

    async def _deliver(self, seq: int, event: dict[str, Any]) -> None:
        """Send the entry ``seq`` to every attached socket not yet past it."""
        self._read_seq = seq  # before any await: a socket joining from now on is past it
        self.seq = max(self.seq, seq)
        for send, cursor in list(self._sockets.items()):
            if cursor >= seq or send not in self._sockets:
                continue
            self._sockets[send] = seq
            try:
                await send(event)
            except Exception:  # a socket that went away; its consumer will leave
                logger.debug("dropping a socket whose send failed", exc_info=True)
                self._sockets.pop(send, None)
