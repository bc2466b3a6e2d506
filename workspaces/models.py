"""The workspaces as the database holds them: what must survive a server's disk.

A file's bytes are a :class:`Blob`, stored once by SHA-256 however many files,
states and sessions hold them. A :class:`Manifest` is one set of files (path to
blob) of a workspace, named by the hash of its listing, so a listing is stored once
per workspace however often the workspace returns to it. A :class:`StoredWorkspace`
says which manifest is current, and its :class:`UndoState` rows which manifests the
undo states are. A server's workspace directory is only a copy of the current
manifest (see :mod:`workspaces.stamps`).

Keyed by the session id alone: the app knows nothing of chat's tables.
"""

from __future__ import annotations

from django.db import models


class Blob(models.Model):
    """A file's bytes, stored once under their SHA-256."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    content = models.BinaryField()
    size = models.PositiveBigIntegerField()

    def __str__(self) -> str:
        return self.sha256


class StoredWorkspace(models.Model):
    """A session's workspace: which manifest holds its current files."""

    session_id = models.CharField(max_length=64, unique=True)
    current = models.CharField(max_length=64)  # the sha256 of the current manifest
    # One more on every change of ``current``: a copy on disk stamped with an older
    # generation is outdated even when the manifest is the same again (see stamps).
    generation = models.PositiveBigIntegerField(default=0)
    # The fencing token of the owner that claimed it last: only writes made as that
    # token are taken (see workspaces.fencing). 0: nobody claimed it.
    writer = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return self.session_id


class Manifest(models.Model):
    """One set of files of a workspace, named by the SHA-256 of its listing."""

    workspace = models.ForeignKey(
        StoredWorkspace, on_delete=models.CASCADE, related_name="manifests"
    )
    sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "sha256"], name="one_manifest_per_listing")
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}:{self.sha256}"


class ManifestEntry(models.Model):
    """One file of a manifest: its path and its blob.

    No unique index on the path: entries are written once, from a mapping, and a
    PostgreSQL index cannot hold a path of 4 KiB.
    """

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="entries")
    path = models.TextField()
    # DO_NOTHING: Django never cascades to or from a blob; the foreign key constraint
    # still makes the database refuse to drop a blob an entry holds (the cleanup's
    # delete of an unreferenced blob that a new entry meanwhile took fails instead).
    blob = models.ForeignKey(Blob, on_delete=models.DO_NOTHING, related_name="+")

    def __str__(self) -> str:
        return self.path


class UndoState(models.Model):
    """A workspace state kept for undo: the files before one turn, oldest first."""

    workspace = models.ForeignKey(
        StoredWorkspace, on_delete=models.CASCADE, related_name="undo_states"
    )
    state_id = models.CharField(max_length=64)
    manifest = models.ForeignKey(Manifest, on_delete=models.RESTRICT, related_name="+")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "state_id"], name="one_undo_state_per_id")
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}:{self.state_id}"
