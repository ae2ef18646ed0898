"""Framework scenarios, run as a script in the frameworks' environment (``.venv-frameworks``).

``python _scenarios.py FRAMEWORK MODE`` with MODE ``llmstash`` (after
``llmstash.install_as_litellm()``) or ``litellm`` (the real package). The scenario code is the
same in both modes: only the first lines differ. Each scenario runs against a fake provider in
this process; the script prints one JSON object: per scenario, whether it passed (and why not),
the key sets of the request bodies the provider received, and the provider's request count
around repeated calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

FRAMEWORK, MODE = sys.argv[1], sys.argv[2]
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="dspy-cache-")
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

if MODE == "llmstash":
    import llmstash

    llmstash.install_as_litellm()

import litellm  # noqa: E402

from llmstash.testing import FakeProvider  # noqa: E402

KEY = "sk-fake-framework-key-0000"
server = FakeProvider().start()
BASE = server.openai_base
os.environ["OPENAI_API_KEY"] = KEY
os.environ["OPENAI_API_BASE"] = BASE
MODEL = "openai/gpt-4o-mini"
results: dict[str, dict[str, Any]] = {}


def scenario(fn: Callable[[dict[str, Any]], None]) -> None:
    """Run one scenario; record its outcome and the bodies it sent."""
    before = len(server.requests)
    info: dict[str, Any] = {"ok": False}
    server.set_reply(None)
    started = time.perf_counter()
    try:
        fn(info)
        info["ok"] = True
    except BaseException as exc:  # report, never stop the other scenarios
        info["error"] = f"{type(exc).__name__}: {exc}"
        info["traceback"] = traceback.format_exc()
    info["seconds"] = round(time.perf_counter() - started, 2)
    info["bodies"] = [sorted(r.json) for r in server.requests[before:] if isinstance(r.json, dict)]
    results[fn.__name__] = info


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def repeat_is_hit(info: dict[str, Any], call: Callable[[], Any]) -> None:
    """Make ``call`` twice; record the provider's count after each."""
    first = call()
    n1 = server.request_count
    second = call()
    info["counts"] = [n1, server.request_count]
    check(first == second, f"the repeated call answered differently: {first!r} != {second!r}")


# --------------------------------------------------------------------------------------- dspy
def dspy_scenarios() -> None:
    import dspy

    lm = dspy.LM(MODEL, engine="litellm", api_base=BASE, api_key=KEY, cache=True)
    dspy.configure(lm=lm)

    def dspy_call(info: dict[str, Any]) -> None:
        server.set_reply("Hello from the fake")
        out = lm("Say hi")
        check(out == ["Hello from the fake"], f"lm() gave {out!r}")

    def dspy_own_cache(info: dict[str, Any]) -> None:
        server.set_reply("Cached words")
        repeat_is_hit(info, lambda: lm("Say something cacheable"))
        # A fresh process reads dspy's disk cache: its unpickler trusts litellm.types.* only.
        dspy.cache.reset_memory_cache()
        out = lm("Say something cacheable")
        info["counts"].append(server.request_count)
        check(out == ["Cached words"], f"the disk-cached answer was {out!r}")

    def dspy_acall(info: dict[str, Any]) -> None:
        out = asyncio.run(lm.acall("Say hello async"))
        check(out == ["Echo: Say hello async"], f"acall gave {out!r}")

    def dspy_predict(info: dict[str, Any]) -> None:
        server.set_reply("[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]")
        pred = dspy.Predict("question -> answer")(question="Capital of France?")
        check(pred.answer == "Paris", f"answer {pred.answer!r}")

    def dspy_json_adapter(info: dict[str, Any]) -> None:
        server.set_reply('{"answer": "Rome"}')
        with dspy.context(adapter=dspy.JSONAdapter()):
            pred = dspy.Predict("question -> answer")(question="Capital of Italy?")
        check(pred.answer == "Rome", f"answer {pred.answer!r}")

    def dspy_capabilities(info: dict[str, Any]) -> None:
        info["capabilities"] = [
            lm.supports_function_calling,
            lm.supports_reasoning,
            lm.supports_response_schema,
            sorted(lm.supported_params),
        ]
        info["models"] = {
            m: [
                litellm.supports_function_calling(model=m),
                litellm.supports_reasoning(m),
                litellm.supports_response_schema(model=m),
                litellm.supports_vision(model=m),
                "response_format" in litellm.get_supported_openai_params(model=m),
            ]
            for m in (
                "gpt-4o-mini",
                "openai/gpt-4o",
                "gpt-3.5-turbo",
                "o3-mini",
                "o1",
                "gpt-4.1",
                "gpt-5",
                "anthropic/claude-sonnet-4-20250514",
            )
        }
        check(lm.supports_function_calling is True, "gpt-4o-mini calls functions")
        check(lm.supports_response_schema is True, "gpt-4o-mini takes a schema")
        check(lm.supports_reasoning is False, "gpt-4o-mini does not reason")
        check("response_format" in lm.supported_params, "response_format is supported")

    def dspy_streamify(info: dict[str, Any]) -> None:
        server.set_reply("[[ ## answer ## ]]\nBerlin is the capital\n\n[[ ## completed ## ]]")
        program = dspy.streamify(
            dspy.Predict("question -> answer"),
            stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
        )

        async def consume() -> tuple[list[str], Any]:
            pieces: list[str] = []
            final = None
            async for value in program(question="Capital of Germany?"):
                if isinstance(value, dspy.streaming.StreamResponse):
                    pieces.append(value.chunk)
                elif isinstance(value, dspy.Prediction):
                    final = value
            return pieces, final

        pieces, final = asyncio.run(consume())
        info["pieces"] = len(pieces)
        check(final is not None and final.answer == "Berlin is the capital", f"final {final!r}")
        check(len(pieces) > 1, f"the listener heard {pieces!r}")
        check("".join(pieces).strip() == "Berlin is the capital", f"pieces {pieces!r}")

    def dspy_responses(info: dict[str, Any]) -> None:
        server.set_reply("Hello from the Responses API")
        responses_lm = dspy.LM(MODEL, model_type="responses", api_base=BASE, api_key=KEY)
        out = responses_lm("Say hi")
        check(out == [{"text": "Hello from the Responses API"}], f"lm() gave {out!r}")
        check(server.requests[-1].path == "/v1/responses", "sent to /v1/responses")

    def dspy_text(info: dict[str, Any]) -> None:
        server.set_reply("Hello as text")
        text_lm = dspy.LM(
            "openai/gpt-3.5-turbo-instruct", model_type="text", api_base=BASE, api_key=KEY
        )
        out = text_lm("Say hi")
        check(out == ["Hello as text"], f"lm() gave {out!r}")
        check(server.requests[-1].path == "/v1/completions", "sent to /v1/completions")

    for fn in (
        dspy_call,
        dspy_own_cache,
        dspy_acall,
        dspy_predict,
        dspy_json_adapter,
        dspy_capabilities,
        dspy_streamify,
        dspy_responses,
        dspy_text,
    ):
        scenario(fn)


# ------------------------------------------------------------------------------ openai-agents
def agents_scenarios() -> None:
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.extensions.models.litellm_model import LitellmModel

    set_tracing_disabled(True)
    litellm.cache = litellm.Cache()
    model = LitellmModel(model=MODEL, base_url=BASE, api_key=KEY)
    agent = Agent(name="helper", instructions="Be brief.", model=model)

    def agents_run(info: dict[str, Any]) -> None:
        repeat_is_hit(info, lambda: Runner.run_sync(agent, "Hello agent").final_output)
        out = Runner.run_sync(agent, "Hello agent").final_output
        check(out == "Echo: Hello agent", f"final output {out!r}")

    def agents_streamed(info: dict[str, Any]) -> None:
        async def consume() -> tuple[str, Any]:
            result = Runner.run_streamed(agent, "Stream please")
            text = ""
            async for event in result.stream_events():
                data = getattr(event, "data", None)
                if getattr(data, "type", None) == "response.output_text.delta":
                    text += data.delta
            return text, result.final_output

        text, final = asyncio.run(consume())
        check(final == "Echo: Stream please", f"final output {final!r}")
        check(text == "Echo: Stream please", f"streamed text {text!r}")

    def agents_tool_call(info: dict[str, Any]) -> None:
        seen: list[str] = []

        @function_tool
        def lookup(query: str) -> str:
            """Look something up."""
            seen.append(query)
            return f"result for {query}"

        tooled = Agent(name="tooled", instructions="Use tools.", model=model, tools=[lookup])
        before = server.request_count
        out = Runner.run_sync(tooled, "Find cats").final_output
        check(seen == ["Find cats"], f"the tool saw {seen!r}")
        check(server.request_count - before == 2, "two turns: the call, then the tool result")
        last = server.requests[-1].json
        roles = [m["role"] for m in last["messages"]]
        check(roles[-2:] == ["assistant", "tool"], f"second turn roles {roles!r}")
        check(last["messages"][-1]["content"] == "result for Find cats", "tool result sent")
        check(out == "Echo: Find cats", f"final output {out!r}")

    for fn in (agents_run, agents_streamed, agents_tool_call):
        scenario(fn)


# --------------------------------------------------------------------------------- smolagents
def smolagents_scenarios() -> None:
    from smolagents import CodeAgent, LiteLLMModel

    litellm.cache = litellm.Cache()
    model = LiteLLMModel(model_id=MODEL, api_base=BASE, api_key=KEY)

    def user(text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "text", "text": text}]}]

    def smolagents_call(info: dict[str, Any]) -> None:
        repeat_is_hit(info, lambda: model(user("Hello smol")).content)
        out = model(user("Hello smol")).content
        check(out == "Echo: Hello smol", f"content {out!r}")

    def smolagents_stream(info: dict[str, Any]) -> None:
        deltas = list(model.generate_stream(user("Stream smol")))
        text = "".join(d.content or "" for d in deltas)
        check(text == "Echo: Stream smol", f"streamed {text!r}")
        usage = [d.token_usage for d in deltas if d.token_usage is not None]
        check(len(usage) == 1 and usage[0].output_tokens > 0, f"usage {usage!r}")

    def smolagents_code_agent(info: dict[str, Any]) -> None:
        server.set_reply('Thought: I know it.\n<code>\nfinal_answer("42")\n</code>')
        agent = CodeAgent(tools=[], model=model, max_steps=2, verbosity_level=0)
        out = agent.run("What is the answer?")
        check(str(out) == "42", f"agent answered {out!r}")

    for fn in (smolagents_call, smolagents_stream, smolagents_code_agent):
        scenario(fn)


try:
    {"dspy": dspy_scenarios, "agents": agents_scenarios, "smolagents": smolagents_scenarios}[
        FRAMEWORK
    ]()
finally:
    server.stop()
    sys.stdout.write("\n@@RESULT@@" + json.dumps(results) + "\n")
    sys.stdout.flush()
