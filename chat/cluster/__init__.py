"""The Redis-backed parts of the runtime, for several servers sharing ``REDIS_URL``."""
