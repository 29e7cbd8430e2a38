"""Use cases. Services take a session and collaborators; they never commit (the caller does)."""
