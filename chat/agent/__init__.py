"""The agent: one Claude Code CLI process per live session and the SDK client that talks
to it, the options it starts with, the tool gate, the launcher and the pool of slots."""
