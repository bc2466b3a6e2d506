"""The chat: the /ws/chat protocol, the Claude agent service and its sessions."""
