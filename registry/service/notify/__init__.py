"""Outbound notifications: events read from the audit log, delivered to webhooks and email.

`config` reads what to send where; `events` turns audit events (and expiring exceptions) into
notifications; `signing` signs webhook bodies; `send` talks to receivers; `dispatcher` is the
worker's loop (audit cursor -> delivery log -> attempts with backoff); `log` reads the log.
"""
