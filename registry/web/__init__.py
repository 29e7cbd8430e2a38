"""The registry web UI (server-rendered; registry/web/routes.py wires one router per area)."""
