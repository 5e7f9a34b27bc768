"""The engine's pure layer: rules as functions of their inputs (no I/O, `now` passed in)."""
