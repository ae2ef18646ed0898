"""Pending callback events of sync calls are flushed (within a bound) at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_sync_events_are_flushed_at_exit(tmp_path):
    out = tmp_path / "event.txt"
    script = textwrap.dedent(
        f"""
        import time
        import llmstash
        from llmstash.integrations.custom_logger import CustomLogger

        class SlowLogger(CustomLogger):
            def log_success_event(self, kwargs, response_obj, start_time, end_time):
                time.sleep(0.3)
                with open({str(out)!r}, "w") as f:
                    f.write(response_obj.choices[0].message.content)

        llmstash.callbacks = [SlowLogger()]
        llmstash.completion(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}],
            mock_response="flushed at exit",
        )
        # no flush_callbacks(): the interpreter exits with the event pending
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "flushed at exit"
