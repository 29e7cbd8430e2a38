"""Fakes and simulators used by the test-suite (local servers, never mocks)."""
