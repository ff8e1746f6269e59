"""The HTTP judge service on a real loopback server: concurrent requests, dynamic batching, 4xx errors."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi")
import httpx
import uvicorn

from judges.base import Judge, conversation, sigmoid, split_conversation
from judges.serve import create_app
from rm_core.testing import free_port, openrlhf_payload

torch.set_num_threads(1)


class CountingJudge(Judge):
    """Reward = words in the response; records each batch size it was called with."""

    def __init__(self):
        super().__init__()
        self.batch_sizes = []

    def _score(self, conversations, references):
        self.batch_sizes.append(len(conversations))
        time.sleep(0.01)  # a model call takes time; requests arriving meanwhile queue up for the next batch
        out = []
        for i, c in enumerate(conversations):
            response = split_conversation(c)[1]
            if response.strip() == "FAIL":
                self.failures.add("scripted", i)
                out.append(None)
            else:
                out.append(float(len(response.split())) + (0.5 if references and references[i] else 0.0))
        return out


@pytest.fixture
def serve():
    servers = []

    def start(judge, **kwargs):
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(judge, **kwargs), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=5)


def test_concurrent_requests_are_batched_and_answered_correctly(serve):
    judge = CountingJudge()
    url = serve(judge, max_batch_size=16, max_wait_ms=20)
    texts = [" ".join(["w"] * (i % 7 + 1)) for i in range(48)]

    async def client():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            reqs = [c.post("/score", json={"conversations": [conversation("q", t)]}) for t in texts]
            return await asyncio.gather(*reqs)

    responses = asyncio.run(client())
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["scores"][0] for r in responses] == [float(i % 7 + 1) for i in range(48)]
    assert sum(judge.batch_sizes) == 48 and max(judge.batch_sizes) > 1  # requests really shared calls
    assert max(judge.batch_sizes) <= 16 and len(judge.batch_sizes) < 48
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and health["pointwise"] is True and health["batches"]["score"] == len(judge.batch_sizes)


def test_score_compare_rank_and_failures(serve):
    url = serve(CountingJudge())
    r = httpx.post(url + "/score", json={"conversations": [conversation("q", "a b"), conversation("q", "FAIL")],
                                         "references": ["x", None]})
    assert r.json() == {"scores": [2.5, None]}  # a failed item is null, never a default
    assert httpx.get(url + "/health").json()["failures"]["total"] == 1
    r = httpx.post(url + "/compare", json={"prompt": "q", "response_a": "a b c", "response_b": "a"})
    assert r.json()["p_a_better"] == pytest.approx(sigmoid(2.0))
    r = httpx.post(url + "/compare", json={"pairs": [{"prompt": "q", "response_a": "a", "response_b": "a b"},
                                                     {"prompt": [{"role": "user", "content": "q"}],
                                                      "response_a": "FAIL", "response_b": "a"}]})
    assert r.json()["p_a_better"][0] == pytest.approx(sigmoid(-1.0)) and r.json()["p_a_better"][1] is None
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "a b c", "FAIL", "a b"]})
    assert r.json() == {"scores": [1.0, 3.0, None, 2.0], "order": [1, 3, 0]}
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "a b c", "a b"], "method": "copeland"})
    assert r.json()["order"] == [1, 2, 0]


def test_bad_requests_get_a_clear_4xx(serve):
    url = serve(CountingJudge())
    assert httpx.post(url + "/score", json={"conversations": []}).status_code == 422
    assert httpx.post(url + "/score", json={"convs": [1]}).status_code == 422
    r = httpx.post(url + "/score", json={"conversations": [[{"role": "user", "content": "no reply"}]]})
    assert r.status_code == 400 and "must end with an assistant message" in r.json()["detail"]
    r = httpx.post(url + "/score", json={"conversations": [conversation("q", "a")], "references": [1, 2]})
    assert r.status_code == 400 and "2 references for 1" in r.json()["detail"]
    r = httpx.post(url + "/compare", json={"prompt": "q", "response_a": "a"})
    assert r.status_code == 400 and "response_b" in r.json()["detail"]
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "b"], "method": "borda"})
    assert r.status_code == 400 and "unknown method" in r.json()["detail"]
    assert httpx.get(url + "/health").status_code == 200  # the server survived all of it


def test_a_pairwise_judge_refuses_score_but_ranks(serve):
    class Pairwise(Judge):
        pointwise = False

        def _compare(self, items):
            return [sigmoid(len(a) - len(b)) for _, a, b in items]

    url = serve(Pairwise())
    r = httpx.post(url + "/score", json={"conversations": [conversation("q", "a")]})
    assert r.status_code == 400 and "pairwise judge" in r.json()["detail"]
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["aa", "aaaa", "a"]})
    assert r.status_code == 200 and r.json()["order"] == [1, 0, 2]
    # one response: nothing compared, so nothing known to be cut (it said truncated: [false])
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["aa"]})
    assert r.status_code == 200 and "truncated" not in r.json()
    # both forms of /compare in one request: refused, not the single pair silently dropped
    r = httpx.post(url + "/compare", json={"prompt": "q", "response_a": "a", "response_b": "bb",
                                           "pairs": [{"prompt": "q", "response_a": "c", "response_b": "d"}]})
    assert r.status_code == 400 and "not both" in r.json()["detail"]


def test_a_listwise_judge_ranks_through_its_own_ranking(serve):
    """/rank "auto" gives what judge.rank gives: a listwise judge's one ranking answer, not n(n-1)/2 comparisons
    aggregated (scores [0, 0, 0] where the judge ranked 1, 2, 3)."""
    class Listwise(Judge):
        pointwise = False

        def __init__(self):
            super().__init__()
            self.compared = 0

        def _compare(self, items):
            self.compared += len(items)
            return [0.5 for _ in items]

        def rank_many(self, items):
            return [[float(len(r)) for r in responses] for _, responses in items]

    judge = Listwise()
    url = serve(judge)
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "aa", "aaa"]})
    assert r.status_code == 200 and r.json()["scores"] == [1.0, 2.0, 3.0] and r.json()["order"] == [2, 1, 0]
    assert judge.compared == 0
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "aa", "aaa"], "method": "win_rate"})
    assert r.status_code == 200 and judge.compared == 3  # an aggregation method: by comparisons, as judge.rank


@pytest.mark.parametrize("kwargs, message", [
    ({"max_batch_size": -1}, "max_batch_size must be a whole number >= 1"),
    ({"max_wait_ms": float("nan")}, "max_wait_ms must be a finite number >= 0"),
    ({"failure_reward": float("nan")}, "failure_reward must be a finite number"),
])
def test_settings_that_would_fail_every_request_are_refused_at_start(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_app(CountingJudge(), **kwargs)


def test_scenario_auto_principles_are_refused_by_the_service():
    judge = CountingJudge()
    judge.per_item_principles = True  # what --judge_principles scenario:auto sets: no request names a scenario
    with pytest.raises(ValueError, match="scenario:auto"):
        create_app(judge)


def test_serve_cli_checks_its_settings_before_loading_the_judge(monkeypatch, capsys):
    import judges
    import judges.serve

    monkeypatch.setattr(judges, "load", lambda spec, **kwargs: pytest.fail("loaded before the settings were checked"))
    with pytest.raises(SystemExit) as exc:
        judges.serve.main(["--judge", "outputs/some-judge", "--max_batch_size", "0"])
    assert exc.value.code != 0 and "max_batch_size must be a whole number >= 1" in capsys.readouterr().err


def test_get_reward_speaks_openrlhf_and_flags_failures(serve):
    url = serve(CountingJudge(), failure_reward=-5.0)
    payload = {"query": ["Q: hi\nA: one two three<|im_end|>", "Q: yo\nA: FAIL", "unrelated text"],
               "prompts": ["Q: hi\nA:", "Q: yo\nA:", "Q: other\nA:"], "labels": [None, None, None]}
    r = httpx.post(url + "/get_reward", json=payload)
    assert r.status_code == 200
    body = r.json()
    assert body["rewards"] == [3.0, -5.0, -5.0] and body["extra_logs"]["judge_failed"] == [0.0, 1.0, 1.0]
    r = httpx.post(url + "/get_reward", json={"query": ["a"], "prompts": ["a", "b"]})
    assert r.status_code == 400 and "must have equal lengths" in r.json()["detail"]
    strict = serve(CountingJudge())  # no failure_reward: a failed item is an error, not an invented reward
    r = httpx.post(strict + "/get_reward", json={"query": ["Q: FAIL"], "prompts": ["Q: "]})
    assert r.status_code == 500 and "failed" in r.json()["detail"]


# ---------------------------------------------------------------- limits, key, fairness


def test_oversized_bodies_get_413_before_they_are_read_whole(serve):
    from judges.serve import Limits

    judge = CountingJudge()
    url = serve(judge, limits=Limits(max_body_bytes=10_000))
    big = {"conversations": [conversation("q", "w " * 20_000)]}
    r = httpx.post(url + "/score", json=big)  # Content-Length says it all: refused before the body is read
    assert r.status_code == 413 and "10000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length (chunked): refused while it streams
        yield b'{"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "'
        for _ in range(50):
            yield b"w " * 500
        yield b'"}]]}'

    r = httpx.post(url + "/score", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert judge.batch_sizes == []  # the judge never saw either
    assert httpx.post(url + "/score", json={"conversations": [conversation("q", "a b")]}).json() == {"scores": [2.0]}


def test_too_many_items_or_rank_responses_get_422(serve):
    from judges.serve import Limits

    url = serve(CountingJudge(), limits=Limits(max_items=4, max_rank_responses=3))
    r = httpx.post(url + "/score", json={"conversations": [conversation("q", "a")] * 5})
    assert r.status_code == 422 and "5 conversations" in r.json()["detail"] and "limit is 4" in r.json()["detail"]
    pair = {"prompt": "q", "response_a": "a", "response_b": "b"}
    assert httpx.post(url + "/compare", json={"pairs": [pair] * 5}).status_code == 422
    r = httpx.post(url + "/rank", json={"prompt": "q", "responses": ["a", "b", "c", "d"]})
    assert r.status_code == 422 and "4 responses" in r.json()["detail"]
    r = httpx.post(url + "/get_reward", json={"query": ["Q: a"] * 5, "prompts": ["Q: "] * 5})
    assert r.status_code == 422
    assert httpx.post(url + "/score", json={"conversations": [conversation("q", "a")] * 4}).status_code == 200


def test_api_key_guards_every_route_but_health(serve):
    url = serve(CountingJudge(), api_key="s3cret-key")
    body = {"conversations": [conversation("q", "a b")]}
    assert httpx.get(url + "/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
        r = httpx.post(url + "/score", json=body, headers=headers)
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    for route, payload in (("/compare", {"prompt": "q", "response_a": "a", "response_b": "b"}),
                           ("/rank", {"prompt": "q", "responses": ["a", "b"]}),
                           ("/get_reward", {"query": ["Q: a"], "prompts": ["Q: "]})):
        assert httpx.post(url + route, json=payload).status_code == 401
    ok = httpx.post(url + "/score", json=body, headers={"Authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200 and ok.json() == {"scores": [2.0]}


def test_the_docstring_curl_example_works_as_written(serve):
    """The example's headers and body, exactly as the module docstring gives them."""
    import json
    import re
    import shlex

    import judges.serve

    line = next(ln for ln in judges.serve.__doc__.splitlines() if ln.strip().startswith("curl "))
    argv = shlex.split(line)
    headers = dict(h.split(": ", 1) for flag, h in itertools.pairwise(argv) if flag == "-H")
    body = argv[argv.index("-d") + 1]
    route = re.search(r"localhost:\d+(/\w+)", line).group(1)
    url = serve(CountingJudge())
    r = httpx.post(url + route, content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"scores": [float(len(json.loads(body)["conversations"][0][-1]["content"].split()))]}


def test_a_large_pairwise_rank_does_not_hold_the_judge_from_other_requests(serve):
    """A 32-response /rank (496 comparisons) runs in chunks through the batcher: a /score sent while it runs is
    answered before the /rank is."""

    class SlowPairwise(Judge):
        pointwise = False

        def __init__(self):
            super().__init__()
            self.calls = 0

        def _compare(self, items):
            self.calls += 1
            time.sleep(0.02)
            return [sigmoid(len(a) - len(b)) for _, a, b in items]

    class Both(SlowPairwise):
        pointwise = True

        def _score(self, conversations, references):
            return [float(len(split_conversation(c)[1])) for c in conversations]

    judge = SlowPairwise()
    url = serve(judge, max_batch_size=16)
    finished = []

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            async def rank():
                r = await c.post("/rank", json={"prompt": "q", "responses": ["a" * (i + 1) for i in range(32)]})
                finished.append("rank")
                return r

            async def compare():
                await asyncio.sleep(0.1)  # the rank is under way
                r = await c.post("/compare", json={"prompt": "q", "response_a": "aa", "response_b": "a"})
                finished.append("compare")
                return r

            return await asyncio.gather(rank(), compare())

    ranked, compared = asyncio.run(run())
    assert ranked.status_code == 200 and ranked.json()["order"] == list(range(31, -1, -1))
    assert compared.status_code == 200 and finished == ["compare", "rank"]
    assert judge.calls >= 496 // 16  # chunks of max_batch_size, not one call holding the judge

    # a pointwise judge ranks by a pairwise method with one score per response, as Judge.rank would rank
    both = Both()
    url2 = serve(both)
    responses = ["bb", "a", "dddd", "ccc"]
    r = httpx.post(url2 + "/rank", json={"prompt": "q", "responses": responses, "method": "bt"})
    expected = Both().rank("q", responses, "bt")
    assert r.json()["scores"] == pytest.approx(expected) and r.json()["order"] == [2, 3, 0, 1]
    assert both.calls == 0  # scored once each, never compared pair by pair


def test_a_request_that_breaks_the_judge_fails_alone_not_its_batch(serve):
    """Items of concurrent requests share a judge call; when one request's item raises, the others are run
    again without it and answered."""

    class Fragile(CountingJudge):
        def _score(self, conversations, references):
            if any(split_conversation(c)[1] == "BOOM" for c in conversations):
                raise RuntimeError("the model cannot take this input")
            return super()._score(conversations, references)

    url = serve(Fragile(), max_batch_size=64, max_wait_ms=50)

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            texts = ["a b", "BOOM", "a b c", "a", "a b c d"]
            return await asyncio.gather(*(c.post("/score", json={"conversations": [conversation("q", t)]})
                                          for t in texts))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200, 500, 200, 200, 200]
    assert [r.json()["scores"][0] for i, r in enumerate(responses) if i != 1] == [2.0, 3.0, 1.0, 4.0]


def test_a_merged_call_that_raised_leaves_no_counts_behind(serve):
    """The requests of a merged call that raised run again one by one: a failed item, a cut sequence, an order
    statistic and a verdict are counted once, not also for the call that was thrown away (/health reads them)."""
    from collections import Counter

    from judges.conflicts import OrderStats

    class CountsThenBreaks(CountingJudge):
        def __init__(self):
            super().__init__()
            self.truncated, self.order_stats, self.verdict_stats = 0, OrderStats(), Counter()

        def _score(self, conversations, references):
            out = super()._score(conversations, references)  # counts a FAIL item
            self.truncated += len(conversations)
            self.order_stats.pairs += len(conversations)
            self.verdict_stats["seen"] += len(conversations)
            if any(split_conversation(c)[1] == "BOOM" for c in conversations):
                raise RuntimeError("the model cannot take this input")
            return out

    judge = CountsThenBreaks()
    url = serve(judge, max_batch_size=64, max_wait_ms=200)

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            return await asyncio.gather(*(c.post("/score", json={"conversations": [conversation("q", t)]})
                                          for t in ("FAIL", "BOOM")))

    fail, boom = asyncio.run(run())
    assert fail.status_code == 200 and fail.json()["scores"] == [None] and boom.status_code == 500
    assert judge.batch_sizes[0] == 2  # they did share a call
    assert judge.failures.counts["scripted"] == 1
    # the merged call (2) was thrown away; then FAIL alone (1) and BOOM alone (1, it raised: not thrown away)
    assert judge.truncated == judge.order_stats.pairs == judge.verdict_stats["seen"] == 2
    assert httpx.get(url + "/health").json()["truncated"] == 2


def test_rm_judge_keeps_max_length_within_the_model_positions():
    from types import SimpleNamespace

    from judges.rm_judge import within_positions

    assert within_positions(SimpleNamespace(max_position_embeddings=512), 2048) == 512
    assert within_positions(SimpleNamespace(max_position_embeddings=8192), 2048) == 2048
    nested = SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=256))
    assert within_positions(nested, 1024) == 256 and within_positions(SimpleNamespace(), 1024) == 1024


# ---------------------------------------------------------------- /get_reward exactly as OpenRLHF calls it
# tiny_rm: conftest.py; openrlhf_payload: rm_core/testing.py (shared with test_openrlhf.py)


def test_get_reward_scores_openrlhfs_exact_payload_as_score_scores_the_clean_conversation(serve, tiny_rm):
    from transformers import AutoTokenizer

    path, judge = tiny_rm
    policy_tokenizer = AutoTokenizer.from_pretrained(path)  # the policy shares the RM's tokenizer and template
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    responses = ["The answer is 5.", "5", "Sure, here is a short answer in one word: five."]
    payload = openrlhf_payload(policy_tokenizer, messages, responses, labels=["5", "5", "5"])
    assert payload["query"][0] == ("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
                                   "The answer is 5.<|im_end|>")
    url = serve(judge)
    assert httpx.get(url + "/health").json()["query_format"] == "auto"
    clean = httpx.post(url + "/score", json={"conversations": [messages + [{"role": "assistant", "content": r}]
                                                               for r in responses]}).json()["scores"]
    r = httpx.post(url + "/get_reward", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rewards"] == pytest.approx(clean, abs=1e-6) and body["scores"] == body["rewards"]
    assert body["extra_logs"] == {"judge_failed": [0.0, 0.0, 0.0]}
    assert clean[0] == pytest.approx(-0.20402, abs=1e-4)  # the clean score

    # the old reading wrapped the templated prompt in the template again: a different (wrong) reward
    double = httpx.post(serve(judge, query_format="messages") + "/get_reward", json=payload).json()["rewards"]
    assert double[0] == pytest.approx(-0.20814, abs=1e-4) and abs(double[0] - clean[0]) > 1e-3

    # "text": OpenRLHF's serve_rm (cli/serve_rm.py:62-71) tokenizes the query as it is, no special tokens added,
    # and reads the reward at the last token: here "<|im_end|>", one token before where this checkpoint's
    # rendered conversations end ("<|im_end|>\n"), so its reward is not the clean conversation's
    as_upstream = httpx.post(serve(judge, query_format="text") + "/get_reward", json=payload).json()["rewards"]
    with torch.no_grad():
        batch = judge.tokenizer(payload["query"][:1], return_tensors="pt", add_special_tokens=False,
                                max_length=2048, padding=True, truncation=True)
        upstream = judge.model(**batch).logits[0, 0].item()
    assert as_upstream[0] == pytest.approx(upstream, abs=1e-6) and abs(upstream - clean[0]) > 1e-3


def test_get_reward_auto_reads_each_query_the_way_it_was_built(serve, tiny_rm):
    _, judge = tiny_rm
    tok = judge.tokenizer
    url = serve(judge, failure_reward=-9.0)

    def clean(prompt, response):
        return httpx.post(url + "/score", json={"conversations": [
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]]}).json()["scores"][0]

    # OpenRLHF without --apply_chat_template: a plain prompt, scored as the conversation it is
    plain = {"query": ["What is 2 + 3?The answer is 5." + tok.eos_token], "prompts": ["What is 2 + 3?"],
             "labels": [""]}
    assert httpx.post(url + "/get_reward", json=plain).json()["rewards"] == pytest.approx(
        [clean("What is 2 + 3?", "The answer is 5.")], abs=1e-6)
    # a response cut by max_tokens has no EOS: scored as the text it is, the turn not completed
    cut = openrlhf_payload(tok, [{"role": "user", "content": "What is 2 + 3?"}], [None])
    assert not cut["query"][0].endswith("<|im_end|>")
    assert httpx.post(url + "/get_reward", json=cut).json()["rewards"] == pytest.approx(
        judge.score_texts(cut["query"]), abs=1e-6)
    # several --remote_rm_url servers: OpenRLHF shards one query over them, the later ones get empty lists
    r = httpx.post(url + "/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert r.status_code == 200 and r.json() == {"rewards": [], "scores": [], "extra_logs": {"judge_failed": []}}
    # an empty query text fails (flagged, failure_reward), a malformed payload is a 400
    r = httpx.post(serve(judge, failure_reward=-9.0, query_format="text") + "/get_reward", json={"query": ["", "x"]})
    assert r.json()["rewards"][0] == -9.0 and r.json()["extra_logs"]["judge_failed"] == [1.0, 0.0]
    assert httpx.post(url + "/get_reward", json={"prompts": ["p"]}).status_code == 400


def test_a_judge_that_cannot_score_text_refuses_text_formats_at_start(serve):
    with pytest.raises(ValueError, match="cannot do"):
        create_app(CountingJudge(), query_format="text")
    with pytest.raises(ValueError, match="unknown query format"):
        create_app(CountingJudge(), query_format="raw")
    url = serve(CountingJudge())  # default for a judge that reads messages: messages
    assert httpx.get(url + "/health").json()["query_format"] == "messages"


def test_serve_cli_rejects_a_query_format_the_judge_cannot_serve(monkeypatch, capsys):
    import judges
    import judges.serve

    monkeypatch.setattr(judges, "load", lambda spec, **kwargs: CountingJudge())  # a judge that reads messages
    with pytest.raises(SystemExit) as exc:
        judges.serve.main(["--judge", "outputs/some-judge", "--query_format", "auto"])
    assert exc.value.code != 0 and "query format 'auto'" in capsys.readouterr().err


def test_serve_cli_runs_a_calls_items_in_one_forward_unless_told(monkeypatch):
    import judges
    import judges.serve

    seen = []

    def load(spec, **kwargs):
        seen.append(kwargs)
        raise RuntimeError("loaded")  # stop before the server starts

    monkeypatch.setattr(judges, "load", load)
    for argv, batch in [([], 32), (["--max_batch_size", "8"], 8), (["--max_batch_size", "8", "--batch_size", "3"], 3)]:
        with pytest.raises((RuntimeError, SystemExit)):
            judges.serve.main(["--judge", "outputs/some-judge", "--dtype", "float32", *argv])
        assert seen[-1]["batch_size"] == batch, argv


# ---------------------------------------------------------------- malformed text, roles and prompts; truncation
def _post_raw(url: str, route: str, body: str) -> httpx.Response:
    """A request body written as JSON text: a lone surrogate ("\\ud800") is valid JSON that httpx's json= cannot
    send."""
    return httpx.post(url + route, content=body.encode(), headers={"Content-Type": "application/json"})


def test_text_with_a_lone_surrogate_is_a_4xx_naming_the_field_and_never_reaches_the_judge(serve):
    judge = CountingJudge()
    url = serve(judge)
    user, reply = '{"role": "user", "content": "Hi"}', '{"role": "assistant", "content": "a\\ud800b"}'
    ok = '{"role": "assistant", "content": "ok"}'
    cases = [("/score", f'{{"conversations": [[{user}, {reply}]]}}', ["body", "conversations", 0, 1, "content"]),
             ("/score", f'{{"conversations": [[{user}, {ok}]], "references": ["\\udc00"]}}',
              ["body", "references"]),
             ("/compare", '{"prompt": "q", "response_a": "a\\ud800b", "response_b": "c"}', ["body", "response_a"]),
             ("/compare", '{"pairs": [{"prompt": "q\\ud800", "response_a": "a", "response_b": "c"}]}',
              ["body", "pairs", 0, "prompt", "text"]),
             ("/rank", '{"prompt": "q", "responses": ["a", "b\\ud800"]}', ["body", "responses", 1])]
    for route, body, loc in cases:
        r = _post_raw(url, route, body)
        assert r.status_code == 422, (route, r.text)
        (error,) = r.json()["detail"]
        assert error["loc"] == loc and "lone surrogate" in error["msg"]
        assert error["input"] in ("a\\ud800b", ["\\udc00"], "q\\ud800", "b\\ud800")  # echoed escaped, not a 500
    r = _post_raw(url, "/get_reward", '{"query": ["Q: a\\ud800"], "prompts": ["Q: "]}')
    assert r.status_code == 400 and "'query'[0] holds a lone surrogate" in r.json()["detail"]
    assert judge.batch_sizes == [] and httpx.get(url + "/health").json()["failures"]["total"] == 0


def test_roles_and_prompt_structure_are_checked_with_a_422_naming_the_field(serve):
    judge = CountingJudge()
    url = serve(judge)

    def error(route, body):
        r = httpx.post(url + route, json=body)
        assert r.status_code == 422, (route, body, r.text)
        (e,) = r.json()["detail"]
        return e["loc"], e["msg"]

    robot, user = {"role": "robot", "content": "q"}, {"role": "user", "content": "q"}
    assistant = {"role": "assistant", "content": "a"}
    # an unknown role anywhere, first or last, is named as such (not "must end with an assistant message")
    loc, msg = error("/score", {"conversations": [[robot, assistant]]})
    assert loc == ["body", "conversations", 0, 0, "role"] and "unknown role 'robot'" in msg
    loc, msg = error("/score", {"conversations": [[user, {"role": "robot", "content": "a"}]]})
    assert loc == ["body", "conversations", 0, 1, "role"] and "unknown role 'robot'" in msg
    assert "must end with an assistant message" not in msg
    loc, msg = error("/rank", {"prompt": [robot], "responses": ["a"]})
    assert loc == ["body", "prompt", "messages", 0, "role"] and "unknown role" in msg
    # a prompt must hold a message and must not end with the assistant (rm_core.data's rule for a prompt)
    loc, msg = error("/compare", {"prompt": [user, assistant], "response_a": "a", "response_b": "b"})
    assert loc == ["body", "prompt"] and "prompt must not end with an assistant message" in msg
    loc, msg = error("/compare", {"prompt": [], "response_a": "a", "response_b": "b"})
    assert loc == ["body", "prompt"] and "at least one message" in msg
    loc, msg = error("/compare", {"pairs": [{"prompt": [assistant], "response_a": "a", "response_b": "b"}]})
    assert loc == ["body", "pairs", 0, "prompt"]
    loc, msg = error("/rank", {"prompt": 5, "responses": ["a"]})
    assert loc == ["body", "prompt"] and "a prompt is a string or a list of messages" in msg
    loc, _ = error("/score", {"conversations": [[]]})
    assert loc == ["body", "conversations", 0]
    assert judge.batch_sizes == []  # nothing malformed reached the judge
    # the roles rm_core.data accepts, and a conversation without the assistant at the end stays a 400
    from rm_core.data import ROLES

    system = {"role": "system", "content": "Be brief."}
    assert set(ROLES) == {"system", "user", "assistant"}
    r = httpx.post(url + "/compare", json={"prompt": [system, user, assistant, user], "response_a": "a b",
                                           "response_b": "a"})
    assert r.status_code == 200 and r.json()["p_a_better"] == pytest.approx(sigmoid(1.0))
    r = httpx.post(url + "/score", json={"conversations": [[system, user]]})
    assert r.status_code == 400 and "must end with an assistant message" in r.json()["detail"]


def test_truncation_is_reported_in_health_and_per_item(serve, tiny_rm):
    import judges

    path, _ = tiny_rm
    judge = judges.load(str(path), max_length=24)
    url = serve(judge)
    assert httpx.get(url + "/health").json()["truncated"] == 0
    long = "word " * 50

    def conv(prompt):
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": "ok"}]

    r = httpx.post(url + "/score", json={"conversations": [conv(long), conv("hi")]}).json()
    assert r["truncated"] == [True, False] and len(r["scores"]) == 2
    assert httpx.get(url + "/health").json()["truncated"] == 1 == judge.truncated
    r = httpx.post(url + "/compare", json={"prompt": long, "response_a": "a", "response_b": "b"}).json()
    assert r["truncated"] is True and 0.0 <= r["p_a_better"] <= 1.0
    r = httpx.post(url + "/compare", json={"pairs": [{"prompt": "hi", "response_a": "a", "response_b": "b"}]}).json()
    assert r["truncated"] == [False]
    for method in ("auto", "bt"):
        r = httpx.post(url + "/rank", json={"prompt": "hi", "responses": ["a", long], "method": method}).json()
        assert r["truncated"] == [False, True]
    assert httpx.get(url + "/health").json()["truncated"] == 1 + 2 + 1 + 1  # a pair cuts both its sequences
    # a judge that keeps no count says so: null, and its answers carry no flags
    plain = serve(CountingJudge())
    assert httpx.get(plain + "/health").json()["truncated"] is None
    assert httpx.post(plain + "/score", json={"conversations": [conversation("q", "a")]}).json() == {"scores": [1.0]}
