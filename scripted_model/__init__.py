"""A scripted stand-in for the Anthropic Messages API (it is NOT Claude).

Plays :mod:`scripted_model.scripts` to the real Claude Agent SDK and its bundled
CLI, so tests, benchmarks and the offline demo run with no network and no key.
Start it with :class:`scripted_model.server.ScriptedModelServer` or
``python -m scripted_model``.
"""
