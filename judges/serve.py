"""Serve any judge over HTTP (FastAPI + uvicorn), with dynamic batching.

    rm-judge-serve --judge outputs/bt-smollm2 --port 8000
    curl -s localhost:8000/score -H 'Content-Type: application/json' -d '{"conversations": [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]}'

Endpoints
- POST /score      {"conversations": [[msg, ...], ...], "references": [..] | null} -> {"scores": [float | null]}
- POST /compare    {"prompt": str | [msg], "response_a": str, "response_b": str}  -> {"p_a_better": float | null}
                   or {"pairs": [{"prompt", "response_a", "response_b"}, ...]}     -> {"p_a_better": [...]}
- POST /rank       {"prompt": ..., "responses": [str, ...], "method": "auto"}    -> {"scores": [...], "order": [...]}
- POST /get_reward OpenRLHF's remote RM protocol: {"query": [...], "prompts": [...], "labels": [...]}
                   -> {"rewards": [...], "scores": [...], "extra_logs": {"judge_failed": [...]}}
                   each query read as `--query_format` says (judges.rl.openrlhf_items): auto (default for reward
                   models) scores a chat-templated query as its text, not templated again; text scores it exactly
                   as OpenRLHF's own serve_rm does; messages splits it into prompt and response and renders them
- GET  /health     -> {"status": "ok", "judge": ..., "pointwise": bool, "failures": {...}, "truncated": int | null}

A null score is an item the judge failed on (counted in /health's failures), never a default value.
Truncation: a reward-model judge cuts a sequence longer than its max_length from the front (keeping the response's
end) and still scores it. /health's "truncated" counts the sequences cut since start (null for a judge that keeps
no count: an LLM judge fails a prompt too long instead); /score, /compare and /rank answers from a judge that says
which items it cut (reward-model judges) add "truncated": one flag per conversation / pair / response, laid out as
"scores" / "p_a_better" (a /rank response is flagged when any comparison it took part in was cut).
/get_reward has no null: a failed item gets `--failure_reward` (flagged in extra_logs.judge_failed) or, without
it, the request gets a 500. OpenRLHF's client (openrlhf/utils/agent.py at 3c3be62, `_post_request`) tries any
non-2xx answer 5 times, 1 s apart, then raises; `execute` only logs that and leaves the sample's reward None
(samples_generator.py: `rewards=None`), which merging experiences does not accept (experience.py `_merge_item`,
experience_maker.py "reward_model_group is required"): the step fails rather than train on an invented reward.
With several remote RM URLs OpenRLHF 0.11.0 (3c3be62) sends each query to the first and empty lists to the others
(answered 200); 0.11.2 sends each to the next server in turn and no empty lists. Its client gives a request 180 s
in all (aiohttp ClientTimeout(total=180)), so a judge slower than that per request fails the step after 5 tries.
Malformed requests get a 422 (schema) or 400 (e.g. a conversation not ending with an assistant message), and
reach no judge: pydantic's 422 names the field ("loc") for a role other than system/user/assistant (rm_core.data's
ROLES), a prompt that is an empty message list or ends with an assistant message (rm_core.data's rule), an empty
conversation, or text holding a lone surrogate ("\\ud800": valid JSON that no tokenizer takes; /get_reward: 400).

Limits (`Limits`, each a flag): a body over `--max_body_mb` (default 8 MiB) gets 413 before it is read whole;
more than `--max_items` (default 256) conversations or pairs in one request, or more than `--max_rank_responses`
(default 32) responses in one /rank, get 422. With `--api_key` (better: the RM_JUDGE_API_KEY environment
variable, which `ps` does not show) every route but /health needs `Authorization: Bearer <key>`, else 401.

Dynamic batching: /score and /compare items from concurrent requests are queued and run together, up to
`max_batch_size` items or `max_wait_ms` after the first queued item, whichever comes first. The judge runs
in ONE worker thread (models are not thread-safe, and one forward over a batch beats many small ones);
the event loop stays free to accept requests meanwhile. A large request never holds the judge for long: a
pairwise /rank goes through the compare batcher in chunks of `max_batch_size` pairs, so other requests' batches
run between its chunks; a pointwise judge's /rank (any method) scores each response once; a listwise judge's
/rank with method "auto" is its one ranking answer (`rank_many`, as `judge.rank` gives), an aggregation method
goes by comparisons. When a merged batch raises, each of its requests runs again alone (only the one that broke
it fails), and what the thrown-away call counted (failures, truncations, order statistics: `Judge.saved_counts`)
is taken back. Settings that would fail every request
(a batch size or limit below 1, a NaN wait or failure_reward) and `scenario:auto` principles (no request names a
scenario) are refused at start.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Discriminator, Field, Tag

from judges.base import FailureLog, Judge, check_text, split_conversation, truncation_count
from rm_core.data import ROLES
from rm_core.errors import UserInputError, cli_entry


# Request schemas (module level: FastAPI resolves the annotations by name). What the judge cannot take is a 422
# naming the field (pydantic's "loc"), before anything reaches the judge: text with a lone surrogate ("\ud800":
# valid JSON, but no tokenizer takes it), a role other than rm_core.data.ROLES, a prompt that is an empty list or
# ends with an assistant message (rm_core.data's rule for a preference row's prompt).
def _valid_text(value: Any) -> Any:
    check_text(value, "the text")
    return value


def _valid_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {list(ROLES)}")
    return role


def _valid_prompt(prompt: str | list) -> str | list:
    if isinstance(prompt, list):
        if not prompt:
            raise ValueError("a prompt given as messages must hold at least one message")
        if prompt[-1].role == "assistant":
            raise ValueError("prompt must not end with an assistant message (the judged response comes after it)")
    return prompt


Text = Annotated[str, AfterValidator(_valid_text)]


class Message(BaseModel):
    role: Annotated[str, AfterValidator(_valid_role)]
    content: Text


# one branch checked, by the input's type: an error names prompt.text or prompt.messages[i], not both
PromptIn = Annotated[Annotated[Text, Tag("text")] | Annotated[list[Message], Tag("messages")],
                     Discriminator(lambda v: "text" if isinstance(v, str) else "messages" if isinstance(v, list) else None,
                                   custom_error_type="prompt_type",
                                   custom_error_message="a prompt is a string or a list of messages"),
                     AfterValidator(_valid_prompt)]


class ScoreRequest(BaseModel):
    conversations: list[Annotated[list[Message], Field(min_length=1)]] = Field(min_length=1)
    references: Annotated[list[Any] | None, AfterValidator(_valid_text)] = None

class Pair(BaseModel):
    prompt: PromptIn
    response_a: Text
    response_b: Text

class CompareRequest(BaseModel):
    prompt: PromptIn | None = None
    response_a: Text | None = None
    response_b: Text | None = None
    pairs: list[Pair] | None = None

class RankRequest(BaseModel):
    prompt: PromptIn
    responses: list[Text] = Field(min_length=1)
    method: str = "auto"



@dataclass
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_items: int = 256  # conversations in /score and /get_reward, pairs in /compare
    max_rank_responses: int = 32  # a pairwise /rank compares n(n-1)/2 pairs: 496 at 32


API_KEY_ENV = "RM_JUDGE_API_KEY"


class BodyLimit:
    """ASGI middleware: 413 for a body over the limit, from Content-Length before reading, or as soon as the
    streamed body passes it; the app gets the body only when it fits (read here, then replayed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, send)
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body.append(message.get("body", b""))
            size += len(body[-1])
            if size > self.max_bytes:
                return await self._reject(scope, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, send):
        from starlette.responses import JSONResponse

        response = JSONResponse({"detail": f"request body over the limit of {self.max_bytes} bytes"}, 413)
        await response(scope, None, send)


class DynamicBatcher:
    """Collects items from concurrent callers and runs `fn(list_of_items) -> list_of_results` on batches."""

    def __init__(self, fn: Callable[[list], list], max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 lock: threading.Lock | None = None, saved_counts: Callable[[], Callable[[], None]] | None = None):
        self.fn = fn
        # the judge's Judge.saved_counts: a merged call that raised leaves no counts behind (failures, truncations,
        # order statistics), as its requests run again one by one and count then
        self.saved_counts = saved_counts
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.lock = lock or threading.Lock()  # shared by all batchers of one judge: one model call at a time
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker:
            self.worker.cancel()

    async def submit(self, items: list) -> list:
        """Queue items (all of one request stay together) and wait for their results."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((items, future))
        return await future

    def _call(self, items: list, merged: bool = False) -> list:
        with self.lock:  # no other call of this judge runs in between: the counts saved are exactly its own
            restore = None if not merged or self.saved_counts is None else self.saved_counts()
            try:
                return self.fn(items)
            except Exception:
                if restore is not None:  # its requests run again one by one and count then
                    restore()
                raise

    async def _run(self) -> None:
        while True:
            requests = [await self.queue.get()]
            size = len(requests[0][0])
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    requests.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
                size += len(requests[-1][0])
            flat = [item for items, _ in requests for item in items]
            try:
                results = await asyncio.to_thread(self._call, flat, len(requests) > 1)
            except Exception as exc:
                if len(requests) == 1:
                    if not requests[0][1].done():
                        requests[0][1].set_exception(exc)
                    continue
                # one request's items broke the call: run each request alone, so only that one fails
                for items, future in requests:
                    try:
                        result = await asyncio.to_thread(self._call, items)
                    except Exception as alone:
                        if not future.done():
                            future.set_exception(alone)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            self.batches += 1
            start = 0
            for items, future in requests:
                if not future.done():
                    future.set_result(results[start:start + len(items)])
                start += len(items)


def check_service_options(max_batch_size: int, max_wait_ms: float, limits: Limits,
                          failure_reward: float | None) -> None:
    """ValueError for a setting that would break every request (a batch size of -1 compared nothing and answered
    null scores; a NaN failure_reward failed every /get_reward), before the judge is loaded."""
    from judges.rl import check_failure_reward

    for name, value in (("max_batch_size", max_batch_size), ("max_items", limits.max_items),
                        ("max_rank_responses", limits.max_rank_responses), ("max_body_bytes", limits.max_body_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not 0 <= max_wait_ms < float("inf"):
        raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
    check_failure_reward(failure_reward)


def create_app(judge: Judge, max_batch_size: int = 32, max_wait_ms: float = 5.0, name: str = "judge",
               failure_reward: float | None = None, limits: Limits | None = None, api_key: str | None = None,
               query_format: str | None = None):
    """The FastAPI app. failure_reward: the reward /get_reward gives an item the judge failed on (flagged in
    extra_logs.judge_failed); None answers such a request with a 500 naming the failures. limits: see Limits.
    api_key: required as a bearer token on every route but /health (None: no key). query_format: how /get_reward
    reads a query (judges.rl.QUERY_FORMATS; None: judges.rl.openrlhf_query_format's default for the judge); one
    the judge cannot serve is a ValueError here, at start."""
    from fastapi import Depends, FastAPI, Header, HTTPException
    from fastapi.exceptions import RequestValidationError

    from judges.rl import judge_marks, openrlhf_query_format, openrlhf_text_scorer

    limits = limits or Limits()
    check_service_options(max_batch_size, max_wait_ms, limits, failure_reward)
    if getattr(judge, "per_item_principles", False):
        raise ValueError("--judge_principles scenario:auto picks each item's principles from its scenario, which no "
                         "request names: the service would show every item the chat principles; give a scenario "
                         "(scenario:code, ...) or principles")
    query_format = openrlhf_query_format(judge, query_format) if judge.pointwise else None
    marks = judge_marks(judge) if query_format == "auto" else None

    def too_many(what: str, n: int, limit: int):
        if n > limit:
            raise HTTPException(422, f"{n} {what} in one request; the limit is {limit} (split the request)")

    async def authorized(authorization: str | None = Header(default=None)):
        if api_key is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send Authorization: Bearer <key>",
                                headers={"WWW-Authenticate": "Bearer"})

    def with_cuts(fn: Callable[[list], list]) -> Callable[[list], list]:
        """fn's results as (result, cut): whether the judge cut the item to its max_length, as the judge's
        `last_item_info` (reward-model judges) says for the call just made; None when the judge does not say."""
        def call(items: list) -> list:
            before = getattr(judge, "last_item_info", None)
            results = fn(items)
            info = getattr(judge, "last_item_info", None)
            if info is before or not isinstance(info, list) or len(info) != len(results) or not all(
                    isinstance(x, dict) and "truncated" in x for x in info):
                return [(r, None) for r in results]
            return [(r, bool(x["truncated"])) for r, x in zip(results, info)]
        return call

    def split_cuts(got: list) -> tuple[list, list | None]:
        """(results, cut flags) of with_cuts pairs; the flags None unless known for every item."""
        cuts = [c for _, c in got]
        return [r for r, _ in got], None if any(c is None for c in cuts) else cuts

    lock = threading.Lock()

    def merge_failures_locked(log: FailureLog) -> None:
        with lock:
            judge.failures.merge(log)

    score_batcher = DynamicBatcher(with_cuts(lambda items: judge.score([c for c, _ in items],
                                                                       [r for _, r in items])),
                                   max_batch_size, max_wait_ms, lock, judge.saved_counts)
    compare_batcher = DynamicBatcher(with_cuts(judge.compare_batch), max_batch_size, max_wait_ms, lock,
                                     judge.saved_counts)
    batchers = {"score": score_batcher, "compare": compare_batcher}
    if query_format in ("auto", "text"):  # /get_reward's chat-templated queries, scored as text
        batchers["text"] = DynamicBatcher(with_cuts(openrlhf_text_scorer(judge, query_format)), max_batch_size,
                                          max_wait_ms, lock, judge.saved_counts)
    # a judge that ranks a whole list in one answer (listwise LLM judges): /rank "auto" asks it so, as judge.rank
    # does, not n(n-1)/2 comparisons aggregated
    listwise = not judge.pointwise and callable(getattr(judge, "rank_many", None))
    if listwise:
        batchers["rank"] = DynamicBatcher(judge.rank_many, max_batch_size, max_wait_ms, lock, judge.saved_counts)

    def plain(prompt):
        return prompt if isinstance(prompt, str) else [m.model_dump() for m in prompt]

    async def lifespan(app):
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(title="reward-model judge", lifespan=lifespan)
    keyed = [Depends(authorized)]  # every route but /health
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError):
        """FastAPI's 422, whose echo of the offending input cannot hold a lone surrogate (its JSON would not
        encode: a 500): such characters are written escaped ("\\ud800")."""
        from fastapi.encoders import jsonable_encoder
        from starlette.responses import JSONResponse

        return JSONResponse({"detail": _encodable(jsonable_encoder(exc.errors()))}, 422)
    app.state.limits = limits
    app.state.batchers = batchers

    @app.get("/health")
    async def health():
        return {"status": "ok", "judge": name, "type": type(judge).__name__, "pointwise": judge.pointwise,
                "query_format": query_format, "failures": judge.failures.as_dict(),
                "truncated": truncation_count(judge),
                "batches": {k: b.batches for k, b in app.state.batchers.items()}}

    @app.post("/score", dependencies=keyed)
    async def score(req: ScoreRequest):
        if not judge.pointwise:
            raise HTTPException(400, f"{type(judge).__name__} is a pairwise judge: use /compare or /rank")
        too_many("conversations", len(req.conversations), limits.max_items)
        if req.references is not None and len(req.references) != len(req.conversations):
            raise HTTPException(400, f"{len(req.references)} references for {len(req.conversations)} conversations")
        convs = [[m.model_dump() for m in conv] for conv in req.conversations]
        for i, conv in enumerate(convs):
            try:
                split_conversation(conv)
            except ValueError as exc:
                raise HTTPException(400, f"conversations[{i}]: {exc}") from None
        refs = req.references or [None] * len(convs)
        scores, cuts = split_cuts(await score_batcher.submit(list(zip(convs, refs))))
        return {"scores": scores} if cuts is None else {"scores": scores, "truncated": cuts}

    @app.post("/compare", dependencies=keyed)
    async def compare(req: CompareRequest):
        single = req.pairs is None
        if single and (req.prompt is None or req.response_a is None or req.response_b is None):
            raise HTTPException(400, "give prompt, response_a and response_b, or a list of pairs")
        if not single and (req.prompt is not None or req.response_a is not None or req.response_b is not None):
            raise HTTPException(400, "give prompt, response_a and response_b, or a list of pairs, not both")
        pairs = [(plain(req.prompt), req.response_a, req.response_b)] if single else [
            (plain(p.prompt), p.response_a, p.response_b) for p in req.pairs]
        if not pairs:
            raise HTTPException(400, "pairs is empty")
        too_many("pairs", len(pairs), limits.max_items)
        probs, cuts = split_cuts(await compare_batcher.submit(pairs))
        out = {"p_a_better": probs[0] if single else probs}
        return out if cuts is None else {**out, "truncated": cuts[0] if single else cuts}

    @app.post("/rank", dependencies=keyed)
    async def rank(req: RankRequest):
        from judges.aggregate import METHODS, rank_order

        if req.method != "auto" and req.method not in METHODS:
            raise HTTPException(400, f"unknown method {req.method!r}; expected auto or one of {list(METHODS)}")
        too_many("responses", len(req.responses), limits.max_rank_responses)
        prompt = plain(req.prompt)
        if judge.pointwise:  # one reward per response, batched with /score traffic
            from judges.base import conversation

            scores, cuts = split_cuts(await score_batcher.submit([(conversation(prompt, r), None)
                                                                  for r in req.responses]))
            if req.method != "auto":  # aggregate the implied pairwise probabilities, as Judge.rank would
                scores = await asyncio.to_thread(_aggregate_pointwise, scores, req.method)
        elif listwise and req.method == "auto":  # one ranking answer for the whole list
            scores, cuts = (await batchers["rank"].submit([(prompt, list(req.responses))]))[0], None
        else:  # every pair through the compare batcher, a chunk at a time: other requests run in between
            pairs = [(i, j) for i in range(len(req.responses)) for j in range(i + 1, len(req.responses))]
            got = []
            for start in range(0, len(pairs), max_batch_size):
                chunk = pairs[start:start + max_batch_size]
                got += await compare_batcher.submit([(prompt, req.responses[i], req.responses[j])
                                                     for i, j in chunk])
            probs, pair_cuts = split_cuts(got)
            cuts = None if pair_cuts is None or not pairs else [any(c for (i, j), c in zip(pairs, pair_cuts) if k in (i, j))
                                                   for k in range(len(req.responses))]
            method = judge.default_rank_method if req.method == "auto" else req.method
            scores = await asyncio.to_thread(_aggregate_pairs, len(req.responses), pairs, probs, method)
        order = rank_order([float("-inf") if s is None else s for s in scores])
        out = {"scores": scores, "order": [i for i in order if scores[i] is not None]}
        return out if cuts is None else {**out, "truncated": cuts}

    @app.post("/get_reward", dependencies=keyed)
    async def get_reward(payload: dict):
        from judges.rl import JudgeFailedError, openrlhf_items, openrlhf_response

        if not judge.pointwise:
            raise HTTPException(400, f"{type(judge).__name__} is a pairwise judge; OpenRLHF scores single responses")
        if not isinstance(payload.get("query"), list):
            raise HTTPException(400, "the payload has no 'query' list: OpenRLHF sends {'query': [prompt + response, "
                                     "...], 'prompts': [...], 'labels': [...]}")
        too_many("queries", len(payload["query"]), limits.max_items)
        unreadable = FailureLog()  # the queries that could not be split: counted in the judge's log under its lock,
        try:                       # where a merged batch that raised puts that log back (DynamicBatcher._call)
            texts, convs, refs = openrlhf_items(payload, query_format, marks, unreadable)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if unreadable.total:
            await asyncio.to_thread(merge_failures_locked, unreadable)
        # each item is a text or a conversation; neither: a query that could not be split, failed
        as_text = [i for i, t in enumerate(texts) if t is not None]
        as_conv = [i for i, c in enumerate(convs) if c is not None]
        jobs = []
        if as_text:
            jobs.append((as_text, batchers["text"].submit([texts[i] for i in as_text])))
        if as_conv:
            jobs.append((as_conv, score_batcher.submit([(convs[i], refs[i]) for i in as_conv])))
        scores: list = [None] * len(texts)
        for (indices, _), got in zip(jobs, await asyncio.gather(*(job for _, job in jobs))):
            for i, (s, _) in zip(indices, got):  # (score, cut): truncation shows in /health, not in OpenRLHF's reply
                scores[i] = s
        try:
            return openrlhf_response(scores, failure_reward)
        except JudgeFailedError as exc:  # no failure_reward set: say so, never invent a reward
            raise HTTPException(500, str(exc)) from None

    return app


def _encodable(value: Any) -> Any:
    """value with every string made UTF-8 encodable (a lone surrogate written as its escape, "\\ud800")."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    return value


def _aggregate_pairs(n: int, pairs: list[tuple[int, int]], probs: list, method: str) -> list[float | None]:
    """Judge.rank's aggregation over a preference matrix filled from compare results (NaN where one failed)."""
    import math

    import numpy as np

    from judges.aggregate import aggregate

    P = np.full((n, n), np.nan)
    for (i, j), p in zip(pairs, probs):
        if p is not None:
            P[i, j], P[j, i] = p, 1.0 - p
    return [None if math.isnan(v) else float(v) for v in aggregate(P, method)]


def _aggregate_pointwise(scores: list, method: str) -> list[float | None]:
    """A pointwise judge's rank under a pairwise method: P(i beats j) = sigmoid(s_i - s_j), each response scored
    once (Judge.rank would score every pair's two responses again)."""
    from judges.base import sigmoid

    n = len(scores)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    probs = [None if scores[i] is None or scores[j] is None else sigmoid(scores[i] - scores[j]) for i, j in pairs]
    return _aggregate_pairs(n, pairs, probs, method)


def server_stack() -> dict:
    """What uvicorn's "auto" runs on: uvloop and httptools when installed, else asyncio and the pure-Python h11."""
    from importlib.util import find_spec

    return {"event_loop": "uvloop" if find_spec("uvloop") else "asyncio",
            "http_parser": "httptools" if find_spec("httptools") else "h11"}


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rm-judge-serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--judge", required=True, help="checkpoint folder / Hub id, or llm:<id> / openai:<model>")
    p.add_argument("--family", default=None, help="override the checkpoint's rm_family")
    p.add_argument("--judge_mode", default=None, choices=["pointwise", "pairwise", "listwise"],
                   help="for llm:/openai: judges")
    p.add_argument("--chat_template", default=None, help="override: Jinja string, .jinja path, or 'plain'")
    from rm_core.models import add_dtype_arg

    add_dtype_arg(p)
    p.add_argument("--max_length", type=int, default=2048)
    p.add_argument("--failure_reward", type=float, default=None,
                   help="/get_reward: reward for an item the judge failed on (flagged); default: answer 500")
    p.add_argument("--query_format", default=None, choices=["auto", "text", "messages"],
                   help="/get_reward (OpenRLHF): 'auto' (default for reward models) scores a chat-templated query "
                        "(--apply_chat_template) as its text, not templated again, completing the template's turn "
                        "end; other queries as messages. 'text': exactly as OpenRLHF's serve_rm (the text as sent, "
                        "no special tokens added; for RMs trained by OpenRLHF). 'messages' (default for LLM judges): "
                        "split into prompt and response and render them with the template")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max_batch_size", type=int, default=32, help="items per judge call")
    p.add_argument("--batch_size", type=int, default=None,
                   help="sequences per forward inside a judge call (reward models; default --max_batch_size: a "
                        "call's items in one forward, split where padding would pass 1.3x their tokens)")
    p.add_argument("--max_wait_ms", type=float, default=5.0, help="how long a batch waits to fill")
    p.add_argument("--max_body_mb", type=float, default=8.0, help="larger request bodies get 413")
    p.add_argument("--max_items", type=int, default=Limits.max_items,
                   help="most conversations (/score, /get_reward) or pairs (/compare) in one request; more get 422")
    p.add_argument("--max_rank_responses", type=int, default=Limits.max_rank_responses,
                   help="most responses in one /rank; more get 422")
    p.add_argument("--api_key", default=None,
                   help=f"require Authorization: Bearer <key> on every route but /health; prefer the {API_KEY_ENV} "
                        "environment variable (a command line is visible to every user of the machine)")
    from judges.cli import add_llm_judge_args

    add_llm_judge_args(p)  # --judge_cache_dir, --judge_base_url, --judge_timeout_s, ... (as the eval_* commands)
    return p


@cli_entry
def main(argv: list[str] | None = None) -> None:
    import uvicorn

    import judges
    from judges.cli import check_llm_judge_args, llm_judge_kwargs

    args = make_parser().parse_args(argv)
    check_llm_judge_args([args.judge], args)
    limits = Limits(int(args.max_body_mb * 1024 * 1024), args.max_items, args.max_rank_responses)
    try:  # before the judge is loaded
        check_service_options(args.max_batch_size, args.max_wait_ms, limits, args.failure_reward)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    if not args.judge.startswith("openai:"):
        from rm_core.models import dtype_choice

        args.dtype, why = dtype_choice(args.dtype)
        print(f"[serve] dtype {args.dtype} ({why})", flush=True)
    if args.judge.startswith(judges.LLM_PREFIXES):  # dtype, batch size, ... go to the backend they belong to
        kwargs = llm_judge_kwargs(args.judge, args)
    else:
        kwargs = {"dtype": args.dtype, "max_length": args.max_length, "family": args.family,
                  "chat_template": args.chat_template,
                  # requests are short and arrive together: batching them doubles throughput on a CPU too
                  # (bench/RESULTS.md, "HTTP service throughput"), and the batches' padding is bounded
                  "batch_size": args.batch_size or args.max_batch_size}
    judge = judges.load(args.judge, **kwargs)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[serve] warning: listening on {args.host} without an API key (set {API_KEY_ENV})", flush=True)
    try:
        app = create_app(judge, args.max_batch_size, args.max_wait_ms, name=args.judge,
                         failure_reward=args.failure_reward, limits=limits, api_key=api_key,
                         query_format=args.query_format)
    except ValueError as exc:  # a --query_format the judge cannot serve, scenario:auto principles
        raise UserInputError(str(exc)) from None
    stack = server_stack()
    print(f"[serve] uvicorn with {stack['event_loop']} and {stack['http_parser']} on {args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
