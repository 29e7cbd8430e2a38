"""Admission policy: documents, facts and pure evaluation to a decision.

Imports only `attestations`. The policy engine lands with the admission issue; this package
exists now so the dependency contracts hold from the first commit.
"""
