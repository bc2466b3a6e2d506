"""The live session: one runner per session, its turns, its event stream and log, the
registry of runners in this process and the graceful shutdown that ends them."""
