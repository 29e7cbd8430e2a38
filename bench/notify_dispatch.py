"""Benchmark the notification dispatcher on an embedded SQLite registry.

Writes 10,000 audit events (decisions, pulls, scans), then times an idle round of a worker's
dispatcher (the look-back re-read), the first round of a restarted worker (which judges the
look-back's events again), and 100 quarantines delivered as signed webhooks to a receiver on
127.0.0.1.

    PYTHONPATH=. .venv/bin/python bench/notify_dispatch.py
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        config_file = Path(tmp) / "notify.json"
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        config_file.write_text(
            json.dumps({"targets": [{"name": "a", "url": url, "secret_env": "BENCH_SECRET"}]})
        )
        os.environ.update(
            MODELCTL_HOME=str(Path(tmp) / "home"),
            MODELCTL_NOTIFY_CONFIG=str(config_file),
            BENCH_SECRET="x" * 32,
        )
        from registry.db.engine import unit_of_work
        from registry.db.models import AuditEvent
        from registry.embedded import EmbeddedRegistry
        from registry.service.notify import config
        from registry.settings import Settings
        from registry.worker import Notifier

        registry = EmbeddedRegistry(Settings.from_env())
        actions = ("checkpoint.decide", "checkpoint.pull", "checkpoint.scan")
        with unit_of_work(registry.sessions) as s:
            for i in range(10_000):
                s.add(
                    AuditEvent(
                        actor="bench",
                        action=actions[i % 3],
                        subject=f"m/n@sha256:{i % 50:064x}",
                        details={"environment": "prod", "allowed": i % 2 == 0, "severities": {}},
                    )
                )
        loaded = config.load(os.environ)
        assert loaded is not None
        notifier = Notifier(registry, loaded)
        notifier.tick()
        notifier.tick()
        start = time.perf_counter()
        for _ in range(50):
            notifier.tick()
        print(f"idle round: {(time.perf_counter() - start) / 50 * 1000:.2f} ms")
        restarted = Notifier(registry, loaded)
        start = time.perf_counter()
        restarted.tick()
        print(f"first round of a restarted worker: {(time.perf_counter() - start) * 1000:.1f} ms")
        restarted.close()
        with unit_of_work(registry.sessions) as s:
            for i in range(100):
                s.add(
                    AuditEvent(
                        actor="bench",
                        action="checkpoint.quarantine",
                        subject=f"m/n@sha256:{i:064x}",
                        details={"reason": "bench"},
                    )
                )
        start = time.perf_counter()
        sent = 0
        while attempts := notifier.tick():
            sent += attempts
        took = (time.perf_counter() - start) * 1000
        print(f"100 quarantines -> {sent} signed webhook deliveries: {took:.0f} ms")
        notifier.close()
        registry.close()
        server.shutdown()


if __name__ == "__main__":
    main()
