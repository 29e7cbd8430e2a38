"""modelctl test-suite."""
