"""System checks for the workspace settings (filled in by the workspaces work)."""
