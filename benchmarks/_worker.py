"""One suite of workloads in a fresh interpreter: ``_worker.py SUITE CONFIG.json OUT.json``.

Suites: ``llmstash`` (with the floors), ``memory`` (memory per cached entry) and ``litellm``.
Each runs in its own process so that one library's imports, background tasks and garbage
never slow the other's measurements.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main() -> int:
    suite, config_path, out_path = sys.argv[1:4]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import Config

    cfg = Config.from_json(Path(config_path).read_text())
    try:
        if suite == "llmstash":
            from _bench_llmstash import run

            result = run(cfg)
        elif suite == "memory":
            from _bench_llmstash import run_memory

            result = run_memory(cfg)
        elif suite == "litellm":
            from _bench_litellm import run

            result = run(cfg)
        else:
            raise SystemExit(f"unknown suite {suite!r}")
    except Exception:
        traceback.print_exc()
        return 1
    Path(out_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
