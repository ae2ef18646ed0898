"""``python -m llmstash.testing``: run a :class:`FakeProvider` in the foreground.

Prints the server's URL on one line, then serves until SIGINT or SIGTERM. Requests are counted
but not recorded (``GET /_fake/stats`` reads the count, ``POST /_fake/reset`` clears it).
``--vendor-extras`` makes OpenAI-format answers carry :data:`~llmstash.testing.VENDOR_EXTRAS`
(kept across resets). ``--no-auth`` answers OpenAI-format requests without a key, as a local
server (Ollama, vLLM, LM Studio) does.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from llmstash.testing import VENDOR_EXTRAS, FakeProvider


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments and serve until a signal arrives."""
    parser = argparse.ArgumentParser(
        prog="python -m llmstash.testing", description="Run the llmstash fake LLM provider."
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="milliseconds added before each answer"
    )
    parser.add_argument(
        "--vendor-extras",
        action="store_true",
        help="add citations, reasoning, token details and other vendor fields to OpenAI answers",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="answer OpenAI-format requests without an Authorization header, as a local server",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    extras = VENDOR_EXTRAS if args.vendor_extras else None
    with FakeProvider(
        latency=args.latency_ms / 1000,
        port=args.port,
        record=False,
        extra_fields=extras,
        require_auth=not args.no_auth,
    ) as server:
        print(server.url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
