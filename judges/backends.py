"""Where an LLM judge's answers come from: a local Hugging Face causal LM, or an OpenAI-compatible endpoint.

Both take a batch of chat requests (each a list of messages) and return one `Result` per request, in order:
`Result.value` is the answer (text, or choice probabilities), or None with `Result.error` saying why (a
short reason a judge counts in its FailureLog) and `Result.detail` the specifics. A backend never raises
for one bad item, and never returns a made-up answer for it.

    generate(requests, max_new_tokens, temperature, seed)  -> list[Result[str]]
    choice_probs(requests, choices)                         -> list[Result[list[float]]]
        P(next token = choice) after the assistant generation prompt, for each of `choices` (each one token),
        NOT renormalised: their sum is the mass the model puts on the choices at all (a judge renormalises, and
        refuses a verdict whose mass is too small: judges.llm_judge). Only where `supports_choice_probs` is True.

With `cache_dir`, every successful call is stored on disk (sqlite, committed per call) under the sha256
of (model, kind of call, messages, sampling settings), so a rerun - or a run resumed after a crash - pays
only for the calls it has not made yet. Failures are not cached. With temperature > 0 the cache returns
the stored sample: pass a different `seed` to draw a new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import math
import os
import random
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar
from urllib.parse import urlparse

from judges.base import Message

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

PROMPT_TOO_LONG = "prompt longer than max_length"
# Prompts an HF backend's choice read-out takes a call (`batch_size` a forward within it; the cache stores each
# call's results as soon as it is done): the prompts' common prefix runs once a call (rm_core.inference).
CHOICE_PROMPTS_PER_CALL = 64
# failure reasons of a call that may succeed when asked again later (an endpoint down, overloaded or cut off)
TRANSIENT_FAILURES = ("timeout", "connection error", "HTTP 408", "HTTP 429", "HTTP 5", "malformed response")


def is_transient(error: str | None) -> bool:
    """Whether a failure reason (a Result's error, possibly after a "generation failed: " style prefix) names a
    failure of the transport, not of the request: a resumable store asks such an item again on a rerun."""
    return bool(error) and error.rpartition(": ")[2].startswith(TRANSIENT_FAILURES)


@dataclass(frozen=True)
class Result(Generic[T]):
    value: T | None
    error: str | None = None  # the failure reason (counted by the judge), e.g. "timeout", "HTTP 400"
    detail: str = ""  # what exactly happened: the server's message, the number of attempts

    @property
    def ok(self) -> bool:
        return self.error is None


class ChatBackend(Protocol):
    name: str  # the model, as it appears in cache keys
    supports_choice_probs: bool

    def generate(self, requests: Sequence[list[Message]], max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int | None = None) -> list[Result[str]]: ...

    def choice_probs(self, requests: Sequence[list[Message]], choices: Sequence[str]) -> list[Result[list[float]]]:
        ...


class ResponseCache:
    """Successful calls on disk: one sqlite row per call, committed as soon as the call finishes, so a
    killed run keeps everything it finished. WAL mode lets several processes share one file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, every put is durable on its own.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @staticmethod
    def key(model: str, kind: str, messages: list[Message], settings: dict) -> str:
        blob = json.dumps({"model": model, "kind": kind, "messages": messages, "settings": settings},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str):
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _CachingBackend:
    """Cache look-up and store shared by both backends."""

    name: str
    cache: ResponseCache | None = None
    cache_tag = ""  # beside the name in every cache key: what else makes an answer differ (see each backend)

    def _open_cache(self, cache_dir: str | Path | None) -> None:
        self.cache = None if cache_dir is None else ResponseCache(Path(cache_dir) / "responses.sqlite")

    def _lookup(self, kind: str, requests: Sequence[list[Message]], settings: dict):
        """(keys, results): results[i] is the cached Result, or None where the call is still to make."""
        if self.cache is None:
            return [None] * len(requests), [None] * len(requests)
        keys = [ResponseCache.key(self.name + self.cache_tag, kind, list(r), settings) for r in requests]
        results = []
        for key in keys:
            value = self.cache.get(key)
            results.append(None if value is None else Result(value))
        return keys, results

    def _store(self, key: str | None, result: Result) -> None:
        # a NaN (choice probabilities of a half-precision forward) is never cached: a rerun would replay it forever
        finite = not isinstance(result.value, list) or all(
            not isinstance(v, float) or math.isfinite(v) for v in result.value)
        if self.cache is not None and key is not None and result.ok and finite:
            self.cache.put(key, result.value)


# -- local Hugging Face causal LM ---------------------------------------------------------------------------
class HFBackend(_CachingBackend):
    """A local causal LM (Hub id or folder; SmolLM2-135M-Instruct works offline through resolve_model).

    Requests are rendered with the chat template and add_generation_prompt=True, sorted by length and run
    in left-padded batches (so every row continues from its own last token). `max_length` bounds the
    prompt in tokens: a longer prompt is a failure (PROMPT_TOO_LONG), never cut, since cutting would drop
    the instructions or one of the responses. Decoding is greedy unless temperature > 0.
    """

    supports_choice_probs = True

    def __init__(self, model_name_or_path: str, dtype: str | torch.dtype = "auto", device: str | None = None,
                 batch_size: int | None = None, max_length: int = 2048, cache_dir: str | Path | None = None,
                 chat_template: str | None = None):
        from transformers import AutoModelForCausalLM

        from rm_core.inference import default_batch_size
        from rm_core.models import inference_device, load_for_inference, resolve_dtype

        self.name = str(model_name_or_path)
        self.device = inference_device(device)
        dtype = resolve_dtype(dtype, self.device)
        # prompts a forward: the machine's default when not given (2 on a CPU, 4 in bf16 with AMX, 16 on a GPU)
        self.batch_size, self.max_length = batch_size or default_batch_size(self.device, dtype), max_length
        # the template applied, and on a CPU packed bf16 weights and the malloc setting (generation +18%)
        model, self.tokenizer = load_for_inference(model_name_or_path, AutoModelForCausalLM.from_pretrained, dtype,
                                                   chat_template, self.device)
        self.model = model.eval()
        if self.tokenizer.pad_token is None:
            # Pads are masked out and sit left of the prompt, so EOS is a safe pad for generation.
            if self.tokenizer.eos_token is None:
                raise ValueError(f"tokenizer of {model_name_or_path} has neither a pad nor an EOS token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if cache_dir is not None:
            # Answers of other weights (a model retrained in place), another chat template or another dtype are
            # other answers: the key holds the model's content fingerprint, the template and the dtype; in bf16/fp16
            # also the device kind and kernels (rm_core.inference.numerics), which round differently.
            from rm_core.inference import numerics_fingerprint
            from rm_core.resume import model_fingerprint

            weights = {k: v for k, v in model_fingerprint(str(model_name_or_path)).items() if k != "path"}
            who = {"model": weights, "chat_template": self.tokenizer.chat_template, "dtype": str(dtype)}
            half = numerics_fingerprint(self.device, dtype, self.model)
            if half is not None:
                who["numerics"] = half
            identity = json.dumps(who, sort_keys=True)
            self.cache_tag = "@" + hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._open_cache(cache_dir)

    def _encode(self, messages: list[Message]) -> list[int]:
        from rm_core.templates import tokenize_messages

        return tokenize_messages(self.tokenizer, list(messages), add_generation_prompt=True)

    def _batches(self, kind: str, requests: Sequence[list[Message]], settings: dict, run: Callable,
                 per_call: int | None = None) -> list[Result]:
        """Cached results, PROMPT_TOO_LONG failures, and `run(list of id lists) -> values` on the rest in
        length-sorted batches of `per_call` (default: the batch size), each stored in the cache as soon as it is
        done."""
        keys, results = self._lookup(kind, requests, settings)
        todo = []
        for i, messages in enumerate(requests):
            if results[i] is None:
                ids = self._encode(messages)
                if len(ids) > self.max_length:
                    results[i] = Result(None, PROMPT_TOO_LONG, f"{len(ids)} tokens > max_length {self.max_length}")
                else:
                    todo.append((len(ids), i, ids))
        todo.sort()
        from rm_core.progress import progress

        with progress(total=len(todo), desc="judge calls", unit="call", leave=False) as bar:
            per_call = per_call or self.batch_size
            for start in range(0, len(todo), per_call):
                batch = todo[start:start + per_call]
                for (_, i, _), value in zip(batch, run([ids for _, _, ids in batch])):
                    results[i] = Result(value)
                    self._store(keys[i], results[i])
                bar.update(len(batch))
        return results

    def _left_padded(self, batch: list[list[int]]):
        import torch

        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        return input_ids, mask

    def generate(self, requests: Sequence[list[Message]], max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int | None = None) -> list[Result[str]]:
        import torch

        def run(batch: list[list[int]]) -> list[str]:
            input_ids, mask = self._left_padded(batch)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            if temperature > 0 and seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                          pad_token_id=self.tokenizer.pad_token_id, **sampling)
            return [t.strip() for t in self.tokenizer.batch_decode(out[:, input_ids.shape[1]:],
                                                                    skip_special_tokens=True)]

        settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
        return self._batches("generate", requests, settings, run)

    def choice_token_ids(self, choices: Sequence[str]) -> list[int]:
        """The token id each choice has when generated right after the generation prompt (so "A" and not
        " A" for ChatML templates). A choice that is not exactly one token there is an error."""
        prefix = self.tokenizer.apply_chat_template([{"role": "user", "content": "?"}], tokenize=False,
                                                    add_generation_prompt=True)
        base = self.tokenizer(prefix, add_special_tokens=True)["input_ids"]
        ids = []
        for choice in choices:
            full = self.tokenizer(prefix + choice, add_special_tokens=True)["input_ids"]
            if full[:len(base)] == base and len(full) == len(base) + 1:
                ids.append(full[-1])
                continue
            alone = self.tokenizer(choice, add_special_tokens=False)["input_ids"]  # merged with the prefix
            if len(alone) != 1:
                raise ValueError(f"choice {choice!r} is {len(alone)} tokens for {self.name}; choice_probs needs "
                                 f"single-token choices (e.g. 'A', 'B')")
            ids.append(alone[0])
        if len(set(ids)) != len(ids):
            raise ValueError(f"choices {list(choices)} share a token id for {self.name}")
        return ids

    def choice_probs(self, requests: Sequence[list[Message]], choices: Sequence[str]) -> list[Result[list[float]]]:
        from rm_core.inference import next_token_choice_probs

        token_ids = self.choice_token_ids(choices)

        def run(prompts: list[list[int]]) -> list[list[float]]:  # batch_size rows a forward
            return next_token_choice_probs(self.model, prompts, self.tokenizer.pad_token_id, token_ids,
                                           self.batch_size, renormalise=False)

        # cached under a kind of its own: entries of the renormalised read-out (before 2026-12-04) are not these.
        # CHOICE_PROMPTS_PER_CALL prompts a call, so their common prefix (system prompt, instructions, rubrics) runs
        # once for all of them, not once a forward
        return self._batches("choice_mass", requests, {"choices": list(choices)}, run, CHOICE_PROMPTS_PER_CALL)


# -- OpenAI-compatible chat endpoint ------------------------------------------------------------------------
DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def is_loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1: a host whose traffic never leaves the machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ResponseError(Exception):
    """A 200 answer the backend cannot use; `reason` is the counted failure reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class OpenAIBackend(_CachingBackend):
    """Any OpenAI-compatible /chat/completions endpoint (OpenAI, vLLM, SGLang, llama.cpp server, ...).

    base_url: argument, else $OPENAI_BASE_URL, else the OpenAI API. The key is read from the environment
    variable `api_key_env`; it may be empty only for a local server (localhost / 127.0.0.1), which is then
    called without an Authorization header. A key is never sent over plain http:// to a host that is not
    loopback (localhost, 127.0.0.0/8, ::1): that is a UserInputError before any request, unless
    allow_insecure_http=True (--judge_allow_insecure_http) says the network in between is trusted.

    At most `max_concurrency` requests are in flight. Each attempt has `timeout_s` in all (httpx's timeout
    plus asyncio.wait_for, so a server that accepts and then hangs still times out). Timeouts, connection
    errors, 429 and 5xx are retried up to `max_retries` times, waiting backoff_s * 2**attempt (times a
    random factor in [0.5, 1], capped at max_backoff_s), or the server's Retry-After (capped) when it sends
    one. Other 4xx are not retried. What still fails is a Result with the reason ("timeout", "connection
    error", "HTTP 503", "HTTP 400", "malformed response") and the server's message in `detail`.

    use_logprobs=True enables choice_probs through `logprobs`/`top_logprobs` on the first generated token,
    for endpoints that return them (OpenAI, vLLM); choices outside the top 20 get probability 0.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, cache_dir: str | Path | None = None, use_logprobs: bool = False,
                 allow_insecure_http: bool = False):
        import httpx  # noqa: F401  (fail here, not at the first batch, when it is missing)

        from rm_core.errors import UserInputError  # the configuration errors below: one line from a command

        self.name = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        key = os.environ.get(api_key_env, "")
        url = urlparse(self.base_url)
        if not key and url.hostname not in LOCAL_HOSTS and not is_loopback(url.hostname):
            raise UserInputError(f"no API key: set ${api_key_env} (an empty key is allowed only for a local server, "
                                 f"and {self.base_url} is not one)")
        if key and url.scheme == "http" and not is_loopback(url.hostname) and not allow_insecure_http:
            raise UserInputError(f"refusing to send the API key in ${api_key_env} over plain http to {url.hostname}: "
                                 "use https, or pass --judge_allow_insecure_http (allow_insecure_http=True) to allow "
                                 "it")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key = key  # only to redact it from error texts (_redact)
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise UserInputError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        self.max_concurrency, self.timeout_s, self.max_retries = max_concurrency, timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.supports_choice_probs = use_logprobs
        self.cache_tag = f"@{self.base_url}"  # the same model name at another endpoint may be another model
        self._open_cache(cache_dir)

    def generate(self, requests: Sequence[list[Message]], max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int | None = None) -> list[Result[str]]:
        settings = {"max_tokens": max_new_tokens, "temperature": temperature}
        if seed is not None:
            settings["seed"] = seed
        return self._run("generate", requests, settings, settings, _read_text)

    def choice_probs(self, requests: Sequence[list[Message]], choices: Sequence[str]) -> list[Result[list[float]]]:
        if not self.supports_choice_probs:
            raise NotImplementedError("choice_probs needs an endpoint with logprobs: pass use_logprobs=True")
        choices = list(choices)
        body = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
        return self._run("choice_mass", requests, {"choices": choices}, body,
                         lambda data: _read_choices(data, choices))

    def _run(self, kind: str, requests: Sequence[list[Message]], settings: dict, body: dict,
             read: Callable[[dict], object]) -> list[Result]:
        keys, results = self._lookup(kind, requests, settings)
        todo = {i: {"model": self.name, "messages": list(requests[i]), **body}
                for i, r in enumerate(results) if r is None}
        if todo:
            from rm_core.progress import progress

            with progress(total=len(todo), desc="judge calls", unit="call", leave=False) as bar:

                def on_done(i: int, result: Result) -> None:
                    self._store(keys[i], result)
                    bar.update(1)

                done = _run_coroutine(lambda: self._call_all(todo, read, on_done))
            for i, result in done.items():
                results[i] = result
        return results

    async def _call_all(self, bodies: dict[int, dict], read, on_done) -> dict[int, Result]:
        import httpx

        semaphore = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=self._headers, limits=limits,
                                     timeout=httpx.Timeout(self.timeout_s)) as client:

            async def one(i: int, body: dict) -> tuple[int, Result]:
                result = await self._call(client, semaphore, body, read)
                on_done(i, result)  # cached now, not at the end of the batch
                return i, result

            return dict(await asyncio.gather(*(one(i, body) for i, body in bodies.items())))

    async def _call(self, client, semaphore: asyncio.Semaphore, body: dict, read) -> Result:
        import httpx

        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with semaphore:  # released while backing off, so other requests go ahead
                try:
                    response = await asyncio.wait_for(client.post("/chat/completions", json=body), self.timeout_s)
                except (asyncio.TimeoutError, httpx.TimeoutException):
                    error, detail = "timeout", f"no complete answer within {self.timeout_s} s"
                except httpx.RequestError as exc:  # transport errors, and a body that does not decode
                    error, detail = "connection error", self._redact(f"{type(exc).__name__}: {exc}")
                else:
                    if response.status_code == 200:
                        result = _read_response(response, read)
                        return Result(None, result.error, self._redact(result.detail)) if not result.ok else result
                    error, detail = f"HTTP {response.status_code}", self._redact(response.text[:300])
                    if response.status_code not in (408, 429) and (response.status_code < 500
                                                                   or response.status_code in (501, 505)):
                        return Result(None, error, detail)  # the same request would fail the same way
                    retry_after = _seconds(response.headers.get("retry-after"))
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
        return Result(None, error, f"{detail} (after {self.max_retries + 1} attempts)")

    def _redact(self, text: str | None) -> str | None:
        """An error text as it may be kept and shown (failure examples go to results.json and /health): the API key,
        and any bearer token an endpoint echoes back, replaced by ***."""
        if not text:
            return text
        if self._key:
            text = text.replace(self._key, "***")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        # Jitter spreads the retries of many requests that failed together.
        return min(self.backoff_s * 2 ** attempt, self.max_backoff_s) * random.uniform(0.5, 1.0)


def _read_response(response, read) -> Result:
    try:
        return Result(read(response.json()))
    except ResponseError as exc:
        return Result(None, exc.reason, exc.detail)
    except Exception as exc:  # any shape of body this code cannot read: that item's failure, never the batch's
        return Result(None, "malformed response", f"{type(exc).__name__}: {exc}; body: {response.text[:200]}")


def _read_text(data: dict) -> str:
    content = data["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise ResponseError("malformed response", f"message content is {content!r}")
    return content


def _read_choices(data: dict, choices: list[str]) -> list[float]:
    logprobs = (data["choices"][0].get("logprobs") or {}).get("content")
    if not logprobs:
        raise ResponseError("no logprobs in response", "the endpoint ignored logprobs=True")
    mass = dict.fromkeys(choices, 0.0)
    for entry in logprobs[0]["top_logprobs"]:
        token = entry["token"].strip()  # "A" and " A" are the same answer
        if token in mass:
            logprob = float(entry["logprob"])
            if math.isnan(logprob) or logprob > 1e-6:  # NaN, or a "probability" above 1 (+inf included)
                raise ResponseError("malformed response", f"logprob {entry['logprob']!r} for {token!r}")
            mass[token] += math.exp(logprob)
    total = sum(mass.values())
    if not total > 0:
        raise ResponseError("choices not in top_logprobs", str([e["token"] for e in logprobs[0]["top_logprobs"]]))
    return [mass[c] for c in choices]  # not renormalised: the judge reads their sum (judges.llm_judge)


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(retry_after) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def _run_coroutine(make):
    """Run `make()`'s coroutine to the end from sync code, also when called inside a running event loop
    (a notebook, an async server), where asyncio.run would refuse: then it runs in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
