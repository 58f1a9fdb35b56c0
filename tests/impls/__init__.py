"""Independent batch-norm implementations, correct and deliberately broken, that the tests judge."""
