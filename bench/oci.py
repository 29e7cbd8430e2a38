"""Benchmark `modelctl push` and `modelctl mirror oci://` against `skopeo copy` of the same
artifact between the same places (issue 17's bench), on Debian's docker-registry on loopback.

A model of 4 shards of random bytes (`--mib` in all, default 2048) is mirrored from a folder,
attested, then: push (our blob store -> registry A) vs skopeo copy (OCI layout on disk ->
registry B); mirror (registry A -> a fresh blob store) vs skopeo copy (registry A -> OCI layout);
`verify oci://` (registry A: every layer streamed and hashed, nothing written) vs the same
skopeo copy (which also reads and checks every layer).
Each command runs as its own process; peak RSS is its `ru_maxrss`.

    .venv/bin/python bench/oci.py [--mib 2048] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.oci_registry import start_registry

PY = sys.executable


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        detail = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{cmd[:4]} failed: {detail[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=2048)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oci-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "model"
        model.mkdir()
        shard = args.mib // 4 << 20
        for i in range(4):
            with (model / f"model-0000{i + 1}-of-00004.safetensors").open("wb") as f:
                for _ in range(shard >> 24):
                    f.write(os.urandom(16 << 20))
        (model / "config.json").write_text('{"model_type": "bench"}\n')
        env = {
            **os.environ,
            "MODELCTL_HOME": str(tmp / "home"),
            "MODELCTL_SIGNING_KEY_PASSPHRASE": "bench",
            "PYTHONPATH": str(Path.cwd()),
        }
        cli = [PY, "-m", "cli.main"]
        subprocess.run(
            [*cli, "mirror", str(model), "--name", "bench/model", "--no-scan"],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *cli,
                "attest",
                "bench/model",
                "--allow-findings",
                "--public-key-out",
                str(tmp / "registry.pub"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        gen_a = start_registry(tmp / "a")
        reg_a = next(gen_a)
        gen_b = start_registry(tmp / "b")
        reg_b = next(gen_b)
        try:
            push = timed(
                [*cli, "push", "bench/model", reg_a.ref("bench/model:v1"), "--env", "dev"], env
            )
            layout = f"oci:{tmp / 'layout'}:v1"
            src = f"docker://{reg_a.host}/bench/model:v1"
            skopeo = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
            subprocess.run([*skopeo, src, layout], check=True, capture_output=True)
            skopeo_push = timed([*skopeo, layout, f"docker://{reg_b.host}/bench/model:v1"], env)
            env2 = {**env, "MODELCTL_HOME": str(tmp / "home2")}
            # The second registry's database is created first, as a deployment's would be:
            # the schema migrations are not part of a transfer.
            subprocess.run([*cli, "models"], env=env2, check=True, capture_output=True)
            mirror = timed([*cli, "mirror", reg_a.ref("bench/model:v1"), "--no-scan"], env2)
            skopeo_pull = timed([*skopeo, src, f"oci:{tmp / 'layout2'}:v1"], env)
            verify = timed(
                [
                    *cli,
                    "verify",
                    reg_a.ref("bench/model:v1"),
                    "--public-key",
                    str(tmp / "registry.pub"),
                ],
                env,
            )
        finally:
            for gen in (gen_a, gen_b):
                gen.close()
    out = {
        "mib": args.mib,
        "push_s": round(push[0], 2),
        "skopeo_push_s": round(skopeo_push[0], 2),
        "push_speed_vs_skopeo": round(skopeo_push[0] / push[0], 2),
        "mirror_s": round(mirror[0], 2),
        "skopeo_pull_s": round(skopeo_pull[0], 2),
        "mirror_speed_vs_skopeo": round(skopeo_pull[0] / mirror[0], 2),
        "verify_s": round(verify[0], 2),
        "verify_speed_vs_skopeo_pull": round(skopeo_pull[0] / verify[0], 2),
        "peak_rss_mib_children": round(max(push[1], mirror[1], verify[1]), 1),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
