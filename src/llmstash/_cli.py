"""The ``llmstash`` command (also ``python -m llmstash``): look after a cache from a shell.

    llmstash cache ping
    llmstash cache stats [--namespace NS] [--since 1h]
    llmstash cache ls [--namespace NS] [--model M] [--limit N]
    llmstash cache show KEY
    llmstash cache rm KEY...
    llmstash cache clear --namespace NS [--yes]
    llmstash demo

The cache is found from ``--url`` (``redis://``, ``rediss://``, ``unix://``; ``--cluster``
for a Redis Cluster node), ``--disk DIR``, or else ``REDIS_URL`` / ``REDIS_HOST``,
``REDIS_PORT``, ``REDIS_PASSWORD``. Read commands take ``--json``. Keys are listed with
``SCAN`` (every primary of a cluster), never ``KEYS``, and entries are listed from their
headers without decoding their bodies. Exit codes: 0 done, 1 failed (one line on stderr, no
traceback, no password), 2 bad usage.

Only this module imports click, and ``import llmstash`` does not import this module.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from .caching import Cache
from .caching._backend import CacheBackend, SupportsScan
from .caching._cache import _PROCESS_FIELDS
from .caching._redis import RedisBackend
from .caching._stats import MISS_REASONS, CacheStats, Counts

__all__ = ["main"]

T = TypeVar("T")
_ENTRY_MARK = "llmstash:"
_BATCH = 500
_PROGRESS_EVERY = 5000


class Failure(click.ClickException):
    """A command that could not do its job: one line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"llmstash: {self.format_message()}", err=True)


class _Target:
    """Where the cache is, from the options and the environment, and what to call it."""

    def __init__(self, url: str | None, disk: str | None, cluster: bool) -> None:
        self.url = url
        self.disk = disk
        self.cluster = cluster
        self.secrets = [s for s in (_password_of(url), os.environ.get("REDIS_PASSWORD")) if s]

    def label(self) -> str:
        if self.disk:
            return f"disk:{self.disk}"
        url = self.url or os.environ.get("REDIS_URL")
        if url:
            return _hide_password(url)
        host = os.environ.get("REDIS_HOST")
        if host:
            return f"redis://{host}:{os.environ.get('REDIS_PORT', '6379')}"
        return "(no cache configured)"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def open(self) -> Cache:
        if self.url and self.disk:
            raise click.UsageError("give --url or --disk, not both")
        try:
            if self.disk:
                from .caching._disk import FILE_NAME

                # Operators' commands read or delete: a mistyped directory is an error, never
                # a new empty cache.
                if not os.path.isfile(os.path.join(os.path.expanduser(self.disk), FILE_NAME)):
                    raise Failure(f"no disk cache in {self.disk} (no {FILE_NAME} there)")
                return Cache(type="disk", disk_cache_dir=self.disk)
            if self.cluster:
                if not self.url:
                    raise click.UsageError("--cluster needs --url of one node of the cluster")
                parts = urlsplit(self.url)
                node = {"host": parts.hostname or "localhost", "port": parts.port or 6379}
                return Cache(
                    type="redis",
                    redis_startup_nodes=[node],
                    password=parts.password,
                    lookup_timeout=5.0,
                    write_timeout=5.0,
                )
            if not self.url and not (os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST")):
                raise click.UsageError(
                    "no cache given: pass --url redis://HOST:PORT or --disk DIR, "
                    "or set REDIS_URL (or REDIS_HOST, REDIS_PORT, REDIS_PASSWORD)"
                )
            return Cache(type="redis", url=self.url, lookup_timeout=5.0, write_timeout=5.0)
        except (click.UsageError, Failure):
            raise
        except Exception as exc:
            raise Failure(self.scrub(str(exc))) from None


def _password_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _hide_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + netloc))
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)


def _run(target: _Target, work: Callable[[Cache], Coroutine[Any, Any, T]]) -> T:
    """Open the cache, check it answers, run ``work``; failures become one clear line."""

    async def go() -> T:
        cache = target.open()
        try:
            problem = await _problem(cache)
            if problem is not None:
                raise Failure(target.scrub(f"cannot use the cache at {target.label()}: {problem}"))
            return await work(cache)
        finally:
            try:
                await cache.aclose()
            except Exception:
                pass

    try:
        return asyncio.run(go())
    except (click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:
        raise click.Abort() from None
    except Exception as exc:
        text = str(exc) or type(exc).__name__
        raise Failure(target.scrub(f"{type(exc).__name__}: {text}")) from None


async def _problem(cache: Cache) -> str | None:
    """Why the cache does not answer a ping (unreachable, a refused password, a database that
    does not exist, ...), or ``None`` when it answers."""
    backend = cache.backend
    # The Redis backend's ping() answers only yes or no; its client says why.
    client = getattr(backend, "_client", None) if isinstance(backend, RedisBackend) else None
    try:
        if client is not None:
            await asyncio.wait_for(client.ping(), 10.0)
            return None
        if await asyncio.wait_for(backend.ping(), 10.0):
            return None
        return "it did not answer PING"
    except asyncio.TimeoutError:
        return "no answer within 10 s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        click.echo(text())


def _connection(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--cluster", is_flag=True, help="--url names a node of a Redis Cluster.")(f)
    f = click.option(
        "--disk", metavar="DIR", default=None, help="A disk cache directory instead of Redis."
    )(f)
    f = click.option(
        "--url",
        metavar="URL",
        default=None,
        help="Redis URL (default: REDIS_URL, or REDIS_HOST / REDIS_PORT / REDIS_PASSWORD).",
    )(f)
    return f


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def parse_since(text: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` as seconds; ``all`` as ``None``."""
    text = text.strip().lower()
    if text == "all":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration such as 90s, 15m, 1h, 7d or all")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * scale


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmstash", prog_name="llmstash")
def cli() -> None:
    """llmstash: an LLM SDK with a response cache. Look after the cache from a shell."""


@cli.group()
def cache() -> None:
    """Inspect and manage a Redis (or disk) response cache."""


@cache.command()
@_connection
@_json_option
def ping(url: str | None, disk: str | None, cluster: bool, as_json: bool) -> None:
    """Check that the cache answers."""
    target = _Target(url, disk, cluster)

    async def work(c: Cache) -> float:
        start = time.perf_counter()
        await c.backend.ping()
        return (time.perf_counter() - start) * 1000

    ms = _run(target, work)
    label = target.label()
    _emit(
        {"ok": True, "cache": label, "ms": round(ms, 3)},
        as_json,
        lambda: f"PONG {label} ({ms:.2f} ms)",
    )


@cache.command()
@_connection
@_json_option
@click.option("--namespace", default=None, help="Only this namespace.")
@click.option("--since", default="1h", show_default=True, help="Window: 90s, 15m, 1h, 7d or all.")
def stats(
    url: str | None,
    disk: str | None,
    cluster: bool,
    as_json: bool,
    namespace: str | None,
    since: str,
) -> None:
    """Hits, misses by reason and savings of every process sharing the cache."""
    window = parse_since(since)
    target = _Target(url, disk, cluster)

    async def work(c: Cache) -> CacheStats:
        return await c.astats(fleet=True, since=window, namespace=namespace)

    result = _run(target, work)
    data = result.to_dict()
    for name in _PROCESS_FIELDS:  # about this short-lived process, not the fleet
        data.pop(name, None)
    data["cache"] = target.label()
    data["namespace"] = namespace
    _emit(data, as_json, lambda: format_stats(result, target.label(), since, namespace))


def format_stats(s: CacheStats, label: str, since: str, namespace: str | None) -> str:
    """The human-readable report of ``cache stats``."""
    scope = f"namespace {namespace!r}" if namespace is not None else "all namespaces"
    lines = [
        f"cache {label}, last {since} ({s.scope}, {scope})",
        f"  lookups         {s.lookups:>10,}   hit rate {s.hit_rate:.1%}",
        f"  hits            {s.hits:>10,}   (coalesced {s.coalesced:,})",
        f"  misses          {s.misses:>10,}   "
        + ", ".join(f"{r} {s.miss_reasons.get(r, 0):,}" for r in MISS_REASONS),
        f"  stores          {s.stores:>10,}   write failures {s.write_failures:,}",
        f"  tokens saved    {s.tokens_saved:>10,}",
        f"  cost saved      {'$' + format(s.cost_saved_usd, ',.4f'):>10}",
        f"  provider time   {s.provider_time_saved_s:>9,.1f}s   saved (estimated; "
        f"{s.provider_calls:,} provider calls took {s.provider_time_s:,.1f}s)",
    ]
    for title, table in (("by model", s.by_model), ("by namespace", s.by_namespace)):
        if not table:
            continue
        lines.append(f"  {title}:")
        width = max(len(_name(k)) for k in table)
        for name, counts in table.items():
            lines.append(f"    {_name(name):<{width}}  {_row(counts)}")
    return "\n".join(lines)


def _name(key: str) -> str:
    return key or "(none)"


def _row(c: Counts) -> str:
    return (
        f"hits {c.hits:>7,}  misses {c.misses:>7,}  hit rate {c.hit_rate:>6.1%}  "
        f"saved ${c.cost_saved_usd:,.4f}, {c.tokens_saved:,} tokens"
    )


def _prefix(namespace: str | None) -> str:
    return f"{namespace}:{_ENTRY_MARK}" if namespace else ""


def _is_entry(key: str, namespace: str | None) -> bool:
    if key.endswith(":lease"):
        return False
    if namespace:
        return key.startswith(f"{namespace}:{_ENTRY_MARK}")
    return key.startswith(_ENTRY_MARK) or f":{_ENTRY_MARK}" in key


def _namespace_of(key: str) -> str:
    head, mark, _ = key.partition(f":{_ENTRY_MARK}")
    return head if mark and not key.startswith(_ENTRY_MARK) else ""


def _scanner(backend: CacheBackend) -> SupportsScan:
    if not isinstance(backend, SupportsScan):
        raise Failure(f"this cache's backend ({type(backend).__name__}) cannot list its keys")
    return backend


@cache.command(name="ls")
@_connection
@_json_option
@click.option("--namespace", default=None, help="Only this namespace.")
@click.option("--model", default=None, help="Only entries stored for this model.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_entries(
    url: str | None,
    disk: str | None,
    cluster: bool,
    as_json: bool,
    namespace: str | None,
    model: str | None,
    limit: int,
) -> None:
    """List entries: key, kind, model, age, TTL left, size (read from entry headers)."""
    from .caching._codec import peek
    from .exceptions import CacheDataError

    target = _Target(url, disk, cluster)

    async def work(c: Cache) -> list[dict[str, Any]]:
        backend = c.backend
        rows: list[dict[str, Any]] = []
        now = time.time()
        async for keys in _scanner(backend).scan(_prefix(namespace), batch=_BATCH):
            keys = [k for k in keys if _is_entry(k, namespace)]
            if not keys:
                continue
            for key, raw in zip(keys, await backend.get_many(keys), strict=True):
                if raw is None:
                    continue
                try:
                    meta = peek(raw)
                except CacheDataError:
                    rows.append(_row_of(key, "garbage", "", None, 0.0, len(raw), now))
                    continue
                if model is not None and meta.model != model:
                    continue
                rows.append(
                    _row_of(
                        key, meta.kind, meta.model, meta.stored_at, meta.expires_at, meta.size, now
                    )
                )
                if len(rows) >= limit:
                    return rows
        return rows

    rows = _run(target, work)
    _emit(rows, as_json, lambda: _format_rows(rows, limit))


def _row_of(
    key: str,
    kind: str,
    model: str,
    stored_at: float | None,
    expires_at: float,
    size: int,
    now: float,
) -> dict[str, Any]:
    return {
        "key": key,
        "namespace": _namespace_of(key),
        "kind": kind,
        "model": model,
        "age_s": None if stored_at is None else round(max(0.0, now - stored_at), 3),
        "ttl_left_s": round(expires_at - now, 3) if expires_at else None,
        "size": size,
    }


def _format_rows(rows: list[dict[str, Any]], limit: int) -> str:
    if not rows:
        return "no entries"
    header = ("KEY", "KIND", "MODEL", "AGE", "TTL LEFT", "SIZE")
    table = [
        (
            r["key"],
            r["kind"],
            r["model"] or "-",
            _duration(r["age_s"]),
            "never" if r["ttl_left_s"] is None else _duration(r["ttl_left_s"]),
            _size(r["size"]),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in (header, *table)) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *table)
    ]
    if len(rows) >= limit:
        lines.append(f"(first {limit}; --limit N for more)")
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


@cache.command()
@_connection
@click.argument("key")
def show(url: str | None, disk: str | None, cluster: bool, key: str) -> None:
    """Print the entry under KEY, decoded, as JSON."""
    from .caching._codec import (
        ChatEntry,
        EmbeddingEntry,
        ResponsesEntry,
        ResponsesStreamEntry,
        StreamEntry,
        TextCompletionEntry,
        TextCompletionStreamEntry,
        decode,
        peek,
    )
    from .exceptions import CacheDataError

    target = _Target(url, disk, cluster)

    async def work(c: Cache) -> dict[str, Any]:
        raw = await c.backend.get(key)
        if raw is None:
            raise Failure(f"no entry under {key!r}")
        try:
            meta = peek(raw)
            entry = decode(raw)
        except CacheDataError as exc:
            raise Failure(f"the value under {key!r} is not a usable entry ({exc})") from None
        out: dict[str, Any] = {"key": key, **{f: getattr(meta, f) for f in meta.__struct_fields__}}
        if isinstance(entry, (ChatEntry, ResponsesEntry, TextCompletionEntry)):
            out["response"] = entry.response.model_dump()
        elif isinstance(entry, (StreamEntry, TextCompletionStreamEntry)):
            out["chunks"] = [chunk.model_dump() for chunk in entry.chunks]
        elif isinstance(entry, ResponsesStreamEntry):
            out["events"] = [event.model_dump() for event in entry.events]
        elif isinstance(entry, EmbeddingEntry):
            out["tokens"] = entry.tokens
            out["embedding"] = list(entry.vector)
        return out

    click.echo(json.dumps(_run(target, work), indent=2, default=str))


@cache.command()
@_connection
@click.argument("keys", nargs=-1, required=True)
def rm(url: str | None, disk: str | None, cluster: bool, keys: tuple[str, ...]) -> None:
    """Delete the entries under KEYS."""
    target = _Target(url, disk, cluster)

    async def work(c: Cache) -> int:
        return await c.adelete(*keys)

    removed = _run(target, work)
    click.echo(f"removed {removed} of {len(keys)}")


@cache.command()
@_connection
@click.option("--namespace", default=None, help="The namespace to clear (default: none).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def clear(
    url: str | None, disk: str | None, cluster: bool, namespace: str | None, yes: bool
) -> None:
    """Delete every llmstash entry of a namespace (without --namespace: entries stored
    without one). Shared counters are kept."""
    target = _Target(url, disk, cluster)
    what = f"in namespace {namespace!r}" if namespace else "stored without a namespace"
    if not yes:
        click.confirm(f"Delete every llmstash entry {what} at {target.label()}?", abort=True)
    prefix = f"{namespace}:{_ENTRY_MARK}" if namespace else _ENTRY_MARK

    async def work(c: Cache) -> int:
        backend = c.backend
        if not isinstance(backend, SupportsScan):
            return await c.aclear(namespace)
        removed = 0
        shown = 0
        async for keys in backend.scan(prefix, batch=_BATCH):
            if keys:
                removed += await backend.delete(*keys)
            if removed - shown >= _PROGRESS_EVERY:
                shown = removed
                click.echo(f"  deleted {removed:,} ...", err=True)
        return removed

    removed = _run(target, work)
    click.echo(f"deleted {removed:,} entries ({what})")


@cli.command()
def demo() -> None:
    """Run the quick start: a call, its cache hit, a stream, embeddings (in memory; against
    the bundled fake provider unless OPENAI_API_KEY is set)."""
    from ._demo import main as run_demo

    asyncio.run(run_demo())


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=argv, prog_name="llmstash")
