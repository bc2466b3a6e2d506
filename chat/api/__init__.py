"""The HTTP side: the sessions API, its transcripts, ``/health`` and the JSON error answers."""
