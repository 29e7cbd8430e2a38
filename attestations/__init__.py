"""The trust core: digests, streaming hashes and the model manifest.

Pure code: takes bytes and objects, returns results. It imports nothing of ours and no
framework, database or hub client (enforced by import-linter).
"""
