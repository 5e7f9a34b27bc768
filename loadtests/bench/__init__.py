"""The benchmark harness (`commerce bench`): the engine against its own ceilings, one run."""
