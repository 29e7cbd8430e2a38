"""The client side of a registry, with no database: what `--registry URL` runs in the CLI.

`remote` is the `Registry` interface over HTTP to `modelctl serve`; `materialize` stages,
verifies and installs the files of a signed checkpoint (shared with the embedded registry,
whose `service/pull.py` only finds the signed checkpoint in its database).

This package imports neither SQLAlchemy nor `registry.db`, `registry.service`,
`registry.embedded`, `registry.api`, `registry.web` nor `registry.worker`, even indirectly
(an import-linter contract in pyproject.toml). Importing it imports nothing: `remote` pulls in
httpx, which the embedded registry does not need.
"""
