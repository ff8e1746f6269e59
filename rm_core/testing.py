"""Tiny random models and a tokenizer built locally, so unit tests need no download and run in seconds."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(chat_template: str | None = CHATML_TEMPLATE):
    """A byte-level BPE tokenizer trained on a few lines, with SmolLM2's special-token layout
    (unk=<|endoftext|>, bos=<|im_start|>, eos=pad=<|im_end|>), so the pad policy is exercised."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "What is 2 + 3? The answer is 5. Sure, here is a short answer in one word.",
        "I cannot help with that request. Please write a poem about the sea in capital letters.",
        "user assistant system Human Assistant hello world the quick brown fox jumps over the lazy dog",
    ] * 4
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|im_end|>")
    fast.chat_template = chat_template
    return fast


def tiny_llama_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    kwargs = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def tiny_reward_model(seed: int = 0):
    """(LlamaForSequenceClassification with one label, tokenizer), randomly initialised."""
    import torch
    from transformers import LlamaForSequenceClassification

    from rm_core.templates import ensure_pad_token

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(tiny_llama_config(len(tokenizer), num_labels=1))
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


def save_tiny_backbone(path: str | Path, seed: int = 0) -> Path:
    """A tiny causal-LM folder (as a user's base model would be) for end-to-end recipe tests."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer)))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


PROJECT_PACKAGES = ("rm_core", "judges", "eval", "bradley_terry_rm", "pair_pm", "armo_rm", "math_rm", "odin_rm",
                    "decision_tree")


def run_without_project(code: str, cwd: str | Path) -> dict:
    """Run `code` in a fresh interpreter where this project's packages cannot be imported (even installed in the
    venv): how a user without the project loads a trust_remote_code checkpoint. `code` prints one JSON line
    last; returns it parsed. Fails with the child's stderr when it exits non-zero."""
    import json
    import os
    import subprocess
    import sys

    preamble = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {PROJECT_PACKAGES!r}:\n"
        "            raise ImportError(name + ' is blocked: this project is not importable here')\n"
        "sys.meta_path.insert(0, Block())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_MODULES_CACHE=str(Path(cwd) / "modules"))
    proc = subprocess.run([sys.executable, "-c", preamble + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save_tiny_reward_model(path: str | Path, seed: int = 0) -> Path:
    """tiny_reward_model(seed) and its tokenizer saved as a checkpoint folder."""
    model, tokenizer = tiny_reward_model(seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def corpus_tokenizer(texts, vocab_size: int = 1000, chat_template: str | None = CHATML_TEMPLATE):
    """tiny_tokenizer's layout (byte-level BPE, SmolLM2's special tokens), its merges learnt from `texts`: a task's
    words become single tokens, so a tiny model reads words instead of bytes (sequences 3-4x shorter, learnt in a
    few hundred steps). Train it on training text only."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|im_end|>")
    fast.chat_template = chat_template
    return fast


def save_tiny_backbone_for(path: str | Path, texts, vocab_size: int = 1000, seed: int = 0, **config) -> Path:
    """save_tiny_backbone with corpus_tokenizer(texts, vocab_size) and tiny_llama_config(**config) overrides."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = corpus_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer), **config))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def pair_items(prefs: list[dict]) -> list[tuple]:
    """(prompt, chosen, rejected) judge items of preference rows (rm_core.data.to_preferences), earlier turns of a
    multi-turn continuation joined to the prompt."""
    return [(p["prompt"] + p["chosen"][:-1], p["chosen"][-1]["content"], p["rejected"][-1]["content"]) for p in prefs]


def pairwise_correct(judge, prefs: list[dict], tie: float = 0.0) -> list[float]:
    """Per preference pair, 1.0 when `judge` (judges.base.Judge) prefers the chosen response (P > 0.5), `tie` when
    P is exactly 0.5 (default 0.0: the project's strict rule; 0.5 scores an abstention as a fair coin), else 0.0 (a
    failed pair too): per-item accuracies for rm_core.stats.paired_bootstrap."""
    probs = judge.compare_batch(pair_items(prefs))
    return [0.0 if p is None else 1.0 if p > 0.5 else tie if p == 0.5 else 0.0 for p in probs]


def openrlhf_payload(tokenizer, messages: list[dict], responses: list[str | None], labels: list | None = None) -> dict:
    """The body OpenRLHF 3c3be62 posts to --remote_rm_url, built its way: the prompt chat-templated by the dataset
    (openrlhf/datasets/prompts_dataset.py:37), tokenized without special tokens (utils/agent.py:211), the policy's
    tokens appended (vLLM's token_ids end with the EOS it stopped at; None: a response cut by max_tokens, no EOS),
    decoded with special tokens kept (agent.py:283), posted as {query, prompts, labels} (agent.py:332-336)."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(text=prompt, add_special_tokens=False)["input_ids"]
    queries = []
    for response in responses:
        stopped = response is not None
        action_ids = tokenizer(response if stopped else "The answer is", add_special_tokens=False)["input_ids"]
        queries.append(tokenizer.decode(prompt_ids + action_ids + ([tokenizer.eos_token_id] if stopped else []),
                                        skip_special_tokens=False))
    return {"query": queries, "prompts": [prompt] * len(responses), "labels": labels or [""] * len(responses)}


# ---------------------------------------------------------------- a scripted OpenAI-compatible server on loopback


def chat_reply(text: str) -> tuple[int, dict, dict]:
    """A FakeOpenAI behaviour's answer: HTTP 200 with `text` as the assistant's message."""
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}}]}, {}


def echo(body: dict) -> tuple[int, dict, dict]:
    return chat_reply("echo: " + body["messages"][-1]["content"])


def shown_pair(text: str) -> tuple[str, str] | None:
    """(Response A, Response B) as a rendered default pairwise prompt shows them; None for another prompt."""
    m = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]\n(.*?)\n\n", text, re.S)
    return (m.group(1), m.group(2)) if m else None


class FakeOpenAI(ThreadingHTTPServer):
    """A /v1/chat/completions server on 127.0.0.1 whose answers `behaviour(hit, body)` scripts:
    (status, payload, headers), "hang" (never answers) or "trickle" (a byte every 50 ms for 4 s: only a
    total timeout stops it, not httpx's timeout between bytes)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = lambda hit, body: echo(body)
        self.hits = self.in_flight = self.max_in_flight = 0
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self.lock = threading.Lock()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        assert self.path == "/v1/chat/completions"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.hits += 1
            hit = server.hits
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.requests.append((dict(self.headers), body))
        finished = False
        try:
            action = server.behaviour(hit, body)
            if action == "hang":
                server.release.wait(10)
                return
            if action == "trickle":  # headers at once, then a body that does not complete within 4 s
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(80):
                    if server.release.wait(0.05):
                        break
                    self.wfile.write(b" ")
                    self.wfile.flush()
                return
            status, payload, headers = action
            data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
            # The request ends here: once the bytes are out the client may send its next request, which
            # another thread can count before this one reaches `finally` (a false excess of max_in_flight).
            finished = True
            with server.lock:
                server.in_flight -= 1
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test)
        finally:
            if not finished:
                with server.lock:
                    server.in_flight -= 1


@contextlib.contextmanager
def fake_openai():
    """A FakeOpenAI server running in a thread for the `with` block (its `.url` is the base_url to use)."""
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
