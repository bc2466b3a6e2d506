"""Per-session sandboxes on disk: sync in, snapshot, diff, delete, and the one path gate."""
