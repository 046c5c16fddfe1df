"""The ``lcrag`` command line: ``app`` is the root, one module per command group,
``common`` holds what they share (error and progress display)."""
