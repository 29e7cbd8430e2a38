"""Small helpers shared by tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def safetensors_of(payload: bytes) -> bytes:
    """A valid safetensors file holding `payload` as one U8 tensor: tests that need weights of
    some size and content (random, to defeat compression) get bytes the structure scanner
    accepts. A file named `.safetensors` is claimed by name, so raw bytes so named are
    malformed."""
    entry = {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}
    header = json.dumps({"weight": entry}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + payload


#: A policy set with one environment, `lab`, bound in warn mode: a checkpoint signed by the
#: registry is allowed there, but its license (apache-2.0 in the tests' model card) is not on
#: the list, so the `licenses` check fails as a warning. `gate` binds the same policy enforced.
WARN_POLICY = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata:
  name: lab
spec:
  signers:
    - { name: registry, kind: registry }
  licenses:
    allow: [mit]
  attestations:
    - { predicateType: "https://model_signing/signature/v1.0", signers: [registry] }
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata:
  name: default
spec:
  environments:
    lab: { policy: lab, mode: warn }
    gate: { policy: lab, mode: enforce }
"""


def write_warn_policy(folder: Path) -> Path:
    path = folder / "warn-policy.yaml"
    path.write_text(WARN_POLICY, encoding="utf-8")
    return path
