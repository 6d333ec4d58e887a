"""The ``atlas`` command: one entry point that dispatches, lazily, to the other packages."""
