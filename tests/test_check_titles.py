"""Every check id the policy engine can emit has a human title (issue 20 item 2): the fixed
ids in the evaluator's and the pod checks' source, the families their `check_id`s build, and
every id a decision over the web scenario's checkpoints actually holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import policies
from policies.titles import FAMILIES, TITLES, check_title, known_title
from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from tests.fakes.hfhub import FakeHub
from tests.web_helpers import ENVIRONMENTS, seed

HERE = Path(policies.__file__).parent
SOURCES = [HERE / "evaluate.py", HERE / "pod_checks.py"]


def literal_check_ids() -> set[str]:
    ids: set[str] = set()
    for source in SOURCES:
        text = source.read_text()
        ids |= set(re.findall(r'self\.add\(\s*"([a-z][a-z0-9.-]*)"', text))
        ids |= set(re.findall(r'"(pod\.[a-z-]+)"', text))
    return ids


def family_prefixes() -> set[str]:
    """`<prefix>.` of every id built at run time (f-strings and `check_id` properties)."""
    text = "".join(s.read_text() for s in SOURCES)
    text += (HERE / "model.py").read_text()
    return set(re.findall(r'(?:return |self\.add\(\s*)f"([a-z]+)\.\{', text))


def test_every_fixed_check_id_has_a_title() -> None:
    ids = literal_check_ids()
    assert {"quarantine", "digest", "malicious", "licenses", "pod.privileged"} <= ids
    missing = sorted(i for i in ids if known_title(i) is None)
    assert missing == []


def test_every_check_id_family_has_a_title() -> None:
    prefixes = family_prefixes()
    assert {"attestations", "scans", "verdicts", "rules"} <= prefixes
    assert prefixes <= set(FAMILIES)
    assert check_title("scans.pickle") == "Scanned by pickle"
    assert check_title("attestations.https://slsa.dev/provenance/v1") == (
        "Signed SLSA provenance attestation"
    )
    assert check_title("attestations.https://example.com/x") == (
        "Signed https://example.com/x attestation"
    )


def test_an_unknown_id_is_shown_as_itself_never_hidden() -> None:
    assert known_title("nothing-like-it") is None
    assert check_title("nothing-like-it") == "nothing-like-it"
    assert known_title("scans.") is None  # a family needs a name after the dot
    assert set(TITLES.values()).isdisjoint({""})


def test_every_id_in_real_decisions_has_a_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default policies over the web scenario (allowed, denied, malicious, waivable)."""
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        registry = EmbeddedRegistry(Settings.from_env())
        try:
            scenario = seed(registry, hub, tmp_path / "work")
            seen = {
                c["id"]
                for ref in (scenario.clean, scenario.pickled, scenario.proprietary, scenario.xss)
                for env in ENVIRONMENTS
                for c in registry.policy_check(ref, env).checks
            }
        finally:
            registry.close()
    assert len(seen) > 10
    assert sorted(i for i in seen if known_title(i) is None) == []
