"""Last-token hidden states of a frozen backbone, cached on disk (shared by armo_rm and decision_tree).

For each item (prompt messages, response) one forward pass gives two vectors:
- `embeddings`: the final hidden state at the last token of prompt + response (what a reward head reads);
- `prompt_embeddings`: the final hidden state at the last token of the prompt rendered with the
  generation prompt (what ArmoRM's gating network reads). The backbone is causal, so that vector is the
  same inside the full sequence as in a forward of the prompt alone: it is gathered from the same pass
  whenever the rendered prompt is a token prefix of the rendered conversation (every common template).
  Otherwise (a template that rewrites earlier turns, or a sequence cut to max_length: its prompt lost its start,
  so its state would depend on the response's length) the prompt runs alone, itself cut only if it is too long.

Sequences longer than `max_length` are cut from the front (the end of the response survives, BOS kept).

The cache is content-addressed: an item's key is the sha1 of its token ids and prompt-end position, so
a killed run resumes where it stopped (finished shards are kept; each is written atomically), and items
shared by two data sets (stage 1 ratings and stage 2 pairs) are computed once. A cache folder belongs to
one backbone, by the content of its weights (not its name or path: a backbone retrained in place is another
one) and one dtype: `fingerprint.json` (rm_core.resume). Reusing it with another is an error naming what differs,
never a silent mix; in bf16/fp16 its shards also come from one kind of device and kernels (`numerics.json`,
rm_core.inference.numerics: an AMX CPU and a GPU round differently) and one forward layout (the rows a forward, or
the CPU's token budget: the rows' layout moves the rounding too): a cache built elsewhere, or with another layout, is
read, but computing new items into it so is refused; `overwrite=True` (or deleting the folder) starts it afresh.
Under `accelerate launch` each process computes every world_size-th shard, then all read all.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rm_core.inference import (
    causal_attention,
    forward_batching,
    pad_right,
    padding_bounded_batches,
    width_step,
)
from rm_core.templates import leading_specials, padding_id, tokenize_messages, truncate_keep_end


@dataclass
class RenderedItem:
    ids: list[int]
    prompt_end: int | None  # index of the prompt's last token inside `ids`; None: run the prompt alone
    prompt_ids: list[int]  # the prompt with generation prompt (used when prompt_end is None)
    truncated: bool

    @property
    def key(self) -> str:
        payload = json.dumps([self.ids, self.prompt_end, self.prompt_ids if self.prompt_end is None else None])
        return hashlib.sha1(payload.encode()).hexdigest()


def render_item(tokenizer, prompt: list[dict], response: str, max_length: int | None) -> RenderedItem:
    """Token ids of prompt + response and the position of the prompt's end (see the module docstring)."""
    full = tokenize_messages(tokenizer, list(prompt) + [{"role": "assistant", "content": response}])
    prompt_ids = tokenize_messages(tokenizer, list(prompt), add_generation_prompt=True)
    specials = leading_specials(tokenizer)
    ids, cut = truncate_keep_end(full, max_length, specials)
    # the prompt's state is read inside the sequence only when nothing was cut: a sequence cut at the front holds a
    # cut prompt, whose last state is not the prompt's alone (one prompt's gating input would then depend on the
    # length of the response it is paired with); else the prompt runs alone
    prompt_end = len(prompt_ids) - 1 if not cut and full[: len(prompt_ids)] == prompt_ids else None
    if prompt_end is None:
        prompt_ids, _ = truncate_keep_end(prompt_ids, max_length, specials)
    return RenderedItem(ids, prompt_end, prompt_ids, cut)


def load_backbone(name_or_path: str, dtype: str | torch.dtype = "auto", device: str | None = None):
    """(backbone without LM head, tokenizer) for embedding extraction; dtype "auto": rm_core.models.resolve_dtype."""
    from transformers import AutoModel

    from rm_core.models import load_for_inference

    model, tokenizer = load_for_inference(name_or_path, AutoModel.from_pretrained, dtype, device=device)
    return model.eval(), tokenizer


@torch.inference_mode()
def forward_items(model, items: list[RenderedItem], pad_id: int, batch_size: int = 1,
                  max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings, prompt_embeddings), fp32 on CPU, in the order of `items`; length-sorted right-padded
    batches of `batch_size` rows, or of up to `max_tokens` padded tokens where given (`padding_bounded_batches`)."""
    device = next(model.parameters()).device
    hidden = model.config.get_text_config().hidden_size
    emb = torch.zeros(len(items), hidden)
    prompt_emb = torch.zeros(len(items), hidden)

    step = width_step(model)
    causal = causal_attention(model)  # then the right padding needs no mask: the causal kernel, same numbers

    def run(seqs: list[list[int]], gather_at: list[list[int]]) -> list[torch.Tensor]:
        ids, mask = pad_right(seqs, pad_id, step)
        out = model(input_ids=ids.to(device), attention_mask=None if causal else mask.to(device),
                    use_cache=False).last_hidden_state
        return [out[r, pos].float().cpu() for r, pos in enumerate(gather_at)]

    for batch in padding_bounded_batches([len(item.ids) for item in items], batch_size, max_tokens=max_tokens):
        gathered = run([items[i].ids for i in batch],
                       [[len(items[i].ids) - 1, items[i].prompt_end if items[i].prompt_end is not None
                         else len(items[i].ids) - 1] for i in batch])
        for i, g in zip(batch, gathered):
            emb[i], prompt_emb[i] = g[0], g[1]
    alone = [i for i in range(len(items)) if items[i].prompt_end is None]
    for batch in padding_bounded_batches([len(item.prompt_ids) for item in items], batch_size, indices=alone,
                                         max_tokens=max_tokens):
        gathered = run([items[i].prompt_ids for i in batch], [[len(items[i].prompt_ids) - 1] for i in batch])
        for i, g in zip(batch, gathered):
            prompt_emb[i] = g[0]
    return emb, prompt_emb


def claim_cache(folder: str | Path, fingerprint: dict, overwrite: bool = False) -> None:
    """Refuse a cache folder built by another backbone or dtype, or by a version without fingerprints; with
    `overwrite`, delete its shards (and numerics record) and start afresh. Run on one process."""
    from rm_core.resume import check_or_write_fingerprint

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite:
        (folder / "cache_info.json").unlink(missing_ok=True)  # written by versions before fingerprints
    check_or_write_fingerprint(folder, fingerprint, overwrite, sorted(folder.glob("shard-*")) + [folder / "numerics.json"],
                               what="embedding cache",
                               hint="use another cache folder, or delete this one (or extract_embeddings(..., "
                                    "overwrite=True)) to compute it afresh")


def claim_numerics(folder: str | Path, numerics: dict, missing: int) -> str | None:
    """bf16/fp16 embeddings of another device kind or kernels (rm_core.inference.numerics) round differently, so a
    cache holds one kind: `numerics.json` records what computed its shards. Reading a cache made elsewhere is fine;
    computing `missing` new items into it with other numerics would mix two: the error line, else None (and the
    record written when there was none)."""
    from rm_core.hub import atomic_write_json
    from rm_core.resume import differences

    path = Path(folder) / "numerics.json"
    numerics = json.loads(json.dumps(numerics))
    if not path.is_file():
        atomic_write_json(path, numerics)
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        return f"embedding cache {folder}: {path} is cut short or corrupted ({err}): delete it to go on"
    diff = differences(found, numerics) if isinstance(found, dict) else ["numerics.json is not a JSON object"]
    if diff:
        return (f"embedding cache {folder} holds embeddings computed with other numerics ({'; '.join(diff)}); computing "
                f"the {missing} missing item(s) here would mix two roundings: run where it was built, use another "
                "cache folder, or extract_embeddings(..., overwrite=True) to compute it afresh")
    return None


def _stop_on_main_error(state, error: str | None) -> None:
    """Every process raises the main process's refusal (one line), or none does."""
    from rm_core.resume import ResumeError

    if state.num_processes > 1:
        from accelerate.utils import gather_object

        error = gather_object([error])[0]
        state.wait_for_everyone()
    if error is not None:
        raise ResumeError(error)


class EmbeddingCache:
    """A folder of safetensors shards {keys, embeddings, prompt_embeddings}; see the module docstring. Whose it
    is is checked by `claim_cache` (extract_embeddings does) before it is opened."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, tuple[Path, int]] = {}
        self._loaded: dict[Path, dict] = {}
        self.refresh()

    def refresh(self) -> None:
        for meta in sorted(self.folder.glob("shard-*.json")):
            shard = meta.with_suffix(".safetensors")
            if not shard.is_file():
                continue  # written last: a shard without weights is unfinished
            for row, key in enumerate(json.loads(meta.read_text())["keys"]):
                self.index.setdefault(key, (shard, row))

    def missing(self, keys: list[str]) -> list[str]:
        seen, out = set(), []
        for k in keys:
            if k not in self.index and k not in seen:
                seen.add(k)
                out.append(k)
        return out

    def write_shard(self, keys: list[str], emb: torch.Tensor, prompt_emb: torch.Tensor) -> None:
        from safetensors.torch import save_file

        from rm_core.hub import atomic_write_json, new_file_mode

        name = "shard-" + hashlib.sha1("".join(keys).encode()).hexdigest()[:16]
        meta, shard = self.folder / f"{name}.json", self.folder / f"{name}.safetensors"
        atomic_write_json(meta, {"keys": keys})
        tmp = shard.with_suffix(".tmp")
        save_file({"embeddings": emb.contiguous(), "prompt_embeddings": prompt_emb.contiguous()}, str(tmp))
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, shard)
        for row, key in enumerate(keys):
            self.index[key] = (shard, row)

    def get(self, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from safetensors.torch import load_file

        emb, prompt_emb = [], []
        for k in keys:
            shard, row = self.index[k]
            if shard not in self._loaded:
                self._loaded[shard] = load_file(str(shard))
            emb.append(self._loaded[shard]["embeddings"][row])
            prompt_emb.append(self._loaded[shard]["prompt_embeddings"][row])
        return torch.stack(emb), torch.stack(prompt_emb)


def process_state():
    """accelerate's PartialState; on CPU it forms a gloo group only when asked (ACCELERATE_USE_CPU=1, as
    configs/accelerate/cpu.yaml and transformers' use_cpu do), else every process would work alone."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def extract_embeddings(model, tokenizer, pairs: list[tuple[list[dict], str]], cache_dir: str | Path,
                       model_id: str, max_length: int | None = 2048, batch_size: int | None = None,
                       shard_size: int = 64, desc: str = "embeddings", overwrite: bool = False) -> dict:
    """Embeddings of (prompt messages, response) items, computed once and cached (see the module docstring).
    `model_id` names the backbone in the cache's fingerprint (for the reader; the weights themselves identify
    it); `overwrite` empties a cache built by another backbone or dtype (or whose bf16/fp16 shards another kind of device
    computed: claim_numerics) instead of refusing it. `batch_size`: sequences a forward; None: on a CPU as many as
    fit in `default_forward_tokens` padded tokens, on a GPU `default_batch_size`.
    Returns {"embeddings", "prompt_embeddings": [N, H] fp32, "stats": {...}}."""
    from rm_core.progress import progress

    state = process_state()
    rank, world = state.process_index, state.num_processes
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    batch_size, max_tokens = forward_batching(device, dtype, batch_size)  # no batch size: a token budget on a CPU
    pad_id = padding_id(tokenizer)
    from rm_core.inference import numerics_fingerprint
    from rm_core.resume import ResumeError, module_fingerprint

    error = None
    if state.is_main_process:  # one process hashes the weights and checks (or clears) the folder
        fingerprint = {"model": {"path": str(model_id), **module_fingerprint(model)}, "dtype": str(dtype)}
        try:
            claim_cache(cache_dir, fingerprint, overwrite)
        except ResumeError as err:
            error = str(err)
    _stop_on_main_error(state, error)
    cache = EmbeddingCache(cache_dir)
    rendered = [render_item(tokenizer, p, r, max_length) for p, r in pairs]
    keys = [item.key for item in rendered]
    by_key = dict(zip(keys, rendered))
    todo = cache.missing(keys)
    half = numerics_fingerprint(device, dtype, model)
    if half is not None:  # the rows' layout moves bf16/fp16 rounding too, as --batch_size does in evaluation
        half.update({"forward_tokens": max_tokens} if max_tokens else {"batch_size": batch_size})
    if todo and half is not None:  # bf16/fp16: new shards must round as the cached ones did (claim_numerics)
        _stop_on_main_error(state, claim_numerics(cache_dir, half, len(todo)) if state.is_main_process else None)
    if world > 1:  # every process reads the same `todo` before any writes a shard: else the split below differs
        state.wait_for_everyone()  # between them, and the keys a fast process already wrote are computed by no one
    shards = [todo[s:s + shard_size] for s in range(0, len(todo), shard_size)]
    mine = [s for i, s in enumerate(shards) if i % world == rank]
    tokens = sum(len(by_key[k].ids) + (len(by_key[k].prompt_ids) if by_key[k].prompt_end is None else 0)
                 for s in mine for k in s)
    start = time.perf_counter()
    with progress(total=tokens, unit="tok", desc=desc, enabled=rank == 0 and bool(mine)) as bar:
        for shard_keys in mine:
            items = [by_key[k] for k in shard_keys]
            emb, prompt_emb = forward_items(model, items, pad_id, batch_size, max_tokens)
            cache.write_shard(shard_keys, emb, prompt_emb)
            bar.update(sum(len(it.ids) + (len(it.prompt_ids) if it.prompt_end is None else 0) for it in items))
    seconds = time.perf_counter() - start
    if world > 1:
        state.wait_for_everyone()
        cache.refresh()
    emb, prompt_emb = cache.get(keys)
    stats = {"items": len(keys), "computed": sum(len(s) for s in mine), "cached": len(keys) - len(todo),
             "tokens_computed": tokens, "seconds": round(seconds, 2),
             "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and tokens else None,
             "truncated": sum(it.truncated for it in rendered),
             "prompt_run_alone": sum(it.prompt_end is None for it in rendered)}
    return {"embeddings": emb, "prompt_embeddings": prompt_emb, "stats": stats}
