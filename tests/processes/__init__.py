"""Sample batchable processes used by the tests (importable as ``tests.processes.*``)."""
