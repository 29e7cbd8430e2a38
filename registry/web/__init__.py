"""The registry web UI (server-rendered; see registry/web/routes.py)."""
