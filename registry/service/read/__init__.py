"""Read-side queries for the web UI, one module per page: overview, models (search),
checkpoint, findings, diff, audit log, exceptions (`common` holds what they share).

Everything here reads; nothing writes or commits. Queries are shaped for a registry with
thousands of checkpoints: the newest scan per (checkpoint, scanner) comes from grouped
subqueries, pages are fetched with LIMIT/OFFSET and the details (badges, verdicts) only for the
rows on the page. Every status, badge and count is the live status (`live_status`): the
policy in force evaluated now, never the newest recorded decision. Pages get views
(dataclasses), not ORM rows, except where a module's docstring says why.
"""
