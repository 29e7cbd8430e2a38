"""Motifs: word n-grams that recur in the leaked text far above chance, as trigger candidates.

Two sources, both plain counting (deterministic, no model):
* converged-response clusters: leaked samples whose responses are identical; the n-grams that
  the (varied) prompts of such a cluster share, enriched against all leaked prompts;
* frequent n-grams of the leaked user turns, ranked by how far their document frequency
  exceeds what their words' frequencies predict (a PMI-style ratio; unigrams by frequency).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from registry.scanners.backdoor.leakage import Sample


@dataclass(frozen=True, slots=True)
class Motif:
    text: str
    source: str  # "cluster", "ngram" or "vocabulary"
    support: int  # leaked samples containing it
    score: float  # enrichment (cluster) or chance ratio (ngram)


@dataclass(frozen=True, slots=True)
class Cluster:
    response: str
    size: int
    distinct_prompts: int
    example_prompts: tuple[str, ...]


def ngrams(words: Sequence[str], max_n: int) -> set[str]:
    return {
        " ".join(words[i : i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1)
    }


def response_clusters(samples: Sequence[Sample], min_size: int) -> list[Cluster]:
    by_response: dict[str, list[Sample]] = {}
    for s in samples:
        if s.response and s.user:
            by_response.setdefault(s.response, []).append(s)
    clusters = [
        Cluster(
            response=r,
            size=len(group),
            distinct_prompts=len({g.user for g in group}),
            example_prompts=tuple(sorted({g.user for g in group})[:5]),
        )
        for r, group in by_response.items()
        if len(group) >= min_size and len({g.user for g in group}) >= 2
    ]
    return sorted(clusters, key=lambda c: (-c.size, c.response))


def mine(
    samples: Sequence[Sample], *, max_n: int = 4, limit: int = 300
) -> tuple[list[Motif], list[Cluster]]:
    users = [s.user.split() for s in samples if s.user]
    total = max(1, len(users))
    df: Counter[str] = Counter()
    for words in users:
        df.update(ngrams(words, max_n))
    unigram_p = {w: df[w] / total for w in df if " " not in w}
    clusters = response_clusters(samples, min_size=max(3, len(users) // 100))
    found: dict[str, Motif] = {}
    for cluster in clusters[:10]:
        prompts = [s.user.split() for s in samples if s.response == cluster.response and s.user]
        inside: Counter[str] = Counter()
        for words in prompts:
            inside.update(ngrams(words, max_n))
        for gram, count in inside.items():
            share = count / len(prompts)
            if share < 0.5:
                continue
            enrichment = share / (df[gram] / total)
            if enrichment >= 2.0:
                m = Motif(gram, "cluster", df[gram], round(enrichment * math.log1p(count), 4))
                if gram not in found or found[gram].score < m.score:
                    found[gram] = m
    ranked: list[Motif] = []
    for gram, count in df.items():
        if count < 2 or gram in found:
            continue
        words = gram.split()
        if len(words) == 1:
            score = count / total
        else:
            expected = total * math.prod(unigram_p.get(w, 1.0) for w in words)
            score = count / max(expected, 1e-9)
        ranked.append(Motif(gram, "ngram", count, round(score, 4)))
    ranked.sort(key=lambda m: (-m.score, -m.support, m.text))
    motifs = sorted(found.values(), key=lambda m: (-m.score, m.text)) + ranked
    return motifs[:limit], clusters
