"""The names of what the cluster keeps in Redis, in one place.

Every key carries the session id in braces (a Redis Cluster hash tag), so a session's
lease, fencing counter and event stream live in one slot and a script may touch all
of them at once.

The per-client counters (:mod:`chat.cluster.counters`) are not a session's: all their
keys share the one hash tag ``{limits}`` instead, because a counter's script reads a
client's counts together with the set of live servers they are checked against.
"""

from __future__ import annotations

PREFIX = "dai"


def lease_key(session_id: str) -> str:
    """The session's lease: ``"<server id> <fencing token>"``, expiring unless renewed."""
    return f"{PREFIX}:{{{session_id}}}:lease"


def fence_key(session_id: str) -> str:
    """The session's fencing counter: the token of its newest owner (never expires)."""
    return f"{PREFIX}:{{{session_id}}}:fence"


def stream_key(session_id: str) -> str:
    """The session's event stream: entry id ``<seq>-0``, field ``frame`` the wire JSON."""
    return f"{PREFIX}:{{{session_id}}}:events"


def lease_value(server_id: str, token: int) -> str:
    """What a lease holds: who owns the session, under which fencing token."""
    return f"{server_id} {token}"


def server_channel(server_id: str) -> str:
    """The channel-layer channel a server receives frames routed to its sessions on."""
    return f"dai.server.{server_id}"


#: The hash tag of every key of the per-client counters: one slot, so one script may
#: touch a client's counts and the live servers together.
LIMITS_TAG = "{limits}"


def client_count_key(kind: str, client: str) -> str:
    """How many ``kind`` (sockets, sessions) ``client`` holds: a hash, field = server id."""
    return f"{PREFIX}:{LIMITS_TAG}:{kind}:client:{client}"


def live_servers_key(kind: str) -> str:
    """The servers counting ``kind``: a sorted set, score = when (Redis ms) each is
    presumed dead unless it refreshes its entry."""
    return f"{PREFIX}:{LIMITS_TAG}:{kind}:servers"
