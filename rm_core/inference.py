"""Batched reward scoring of token sequences and of preference pairs.

`score_groups` (and `score_pairs`, its groups of two) scores the prefix shared by a group of sequences (a
pair's chosen and rejected, a prompt's candidates: the prompt, and whatever the template renders before
the responses diverge) once: one "tree" sequence holds the prefix and then each sequence's suffix, with
positions and an attention mask that make each suffix see only the prefix and itself. On a CPU several
groups share a forward, block-diagonal, padded only to a multiple of LOW_PRECISION_WIDTH_STEP in
bf16/fp16. What every group of a call shares (a chat template's default system prompt) runs once, into a
cache that each forward starts from. Models without a causal backbone and a `score` head (encoders such as
BERT/MiniLM, which pool at [CLS]) take the plain path: every sequence whole, length-sorted.

`prepare_cpu_inference` is what a judge or evaluation applies to a model it loaded for a CPU: bf16 linear layers
from weights packed once for oneDNN (`pack_cpu_linears`), and glibc's malloc kept from faulting fresh pages in for
every new activation size (`keep_freed_memory`).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import os
import weakref

import torch

# bench.judge_split on the MiniLM service's batches: 1.3 took batch 32's forward from 10.8 to 8.8 ms a request and
# tied at batch 14; 1.1 cost more in extra forwards than it saved in padding.
PADDING_SLACK = 1.3
# Tokens a CPU forward of tree rows packs (`score_groups`). bench/RESULTS.md ("eval_reward_bench speed"): on
# LLMBar fp32/bf16, 256-384 beat one pair a forward; past that, attention over the packed width costs more than
# the bigger matrix products save.
PACK_TOKENS = 256
# On a CPU with AMX, bf16/fp16 matrix products run faster the more rows they get (SmolLM2-135M's bf16 forward on an
# AMX Xeon: 2691 tokens/s at 256 tokens, 3473 at 512), so there tree rows pack up to AMX_PACK_TOKENS and a forward
# takes AMX_ROWS_PER_FORWARD of them (LLMBar, bf16, kernels already built: 8.4 pairs/s at 256 tokens x 1 row, 9.0-9.2
# at 512 x 1, 10.0 at 512 x 2; one row of 1024, 8.8: a row's attention grows with the square of its width; the full
# bench went from 2.20x to 2.40x rewardbench). Four rows beat two once the linears ran packed (2026-12-03, same
# AMX Xeon, alone, alternating): LLMBar eval 12.7/12.9 vs 12.0/12.3 pairs/s (eight rows 12.7/12.4); every padded
# batch of whole sequences gains more: SmolLM2 embeddings 3331 vs 3038 tokens/s (eight: 3684), PRM step scoring
# ~3650 vs ~3000 (eight: ~4000). fp32, and bf16 on CPUs without AMX, keep rows of PACK_TOKENS, CPU_ROWS_PER_FORWARD
# a forward (bench/RESULTS.md, "eval_reward_bench speed").
AMX_PACK_TOKENS = 512
AMX_ROWS_PER_FORWARD = 4
# Every other CPU case takes two rows a forward (tree rows of PACK_TOKENS, or whole sequences padded within
# PADDING_SLACK): once freed memory was kept (`keep_freed_memory`), two beat one in fp32 (2026-12-04, machine alone,
# alternating): on the AMX Xeon LLMBar eval 5.87 / 6.05 vs 5.24 / 5.49 pairs/s (four: 6.04 / 5.98) and SmolLM2
# embeddings 1175 / 1165 vs 1044 / 1069 tokens/s; with its instruction set capped at AVX2 (the AVX2 proxy) 3.89 / 3.88
# vs 3.74 / 3.69 pairs/s and 793 / 782 vs 759 / 740 tokens/s. (Before, on an AVX2 machine without that setting,
# embeddings at batch 4 ran 6% slower than at 1.) On a real AVX512-BF16 CPU without AMX (an AMD EPYC, 2026-12-04),
# rows of 256/384/512 tokens, 1/2/4 a forward, and the token budgets below were all within its 10-20% run-to-run
# noise of these defaults, in fp32 and bf16 (bench/RESULTS.md, "The real AVX512-BF16 CPU at today's code").
CPU_ROWS_PER_FORWARD = 2
# A CPU forward in bf16/fp16 runs oneDNN kernels built for each input shape: a linear layer's first call at a new
# width costs 2-6 ms more than later ones (AMX Xeon), against ~0.5 ms of work at 300 tokens. So forward widths (tree
# rows, padded batches) are padded up to a multiple of this: a run meets a few widths, not one a row (on that CPU,
# bf16 LLMBar evaluation +17%, the MiniLM service +10%: bench/RESULTS.md). fp32 keeps no per-shape kernels, so it is
# not padded.
LOW_PRECISION_WIDTH_STEP = 32


# Whole sequences in padded batches (embedding extraction; the pointwise RM, ArmoRM, PRM and pair-PM judges; pairs
# and groups scored whole: bf16 on AMX, 24 pairs of two 2048-token responses 0.66-0.68 vs 0.47-0.51 pairs/s at 8
# rows) take, where no batch size is given, as many rows a CPU forward as fit in a token budget: short rows gain from
# more of them, long ones lose (attention). SmolLM2-135M,
# HH-RLHF sequences of 85 (short) and 387 (long) tokens on average, tokens/s, two rounds (2026-12-04, AMX Xeon,
# machine alone):
#   bf16, rows 4 / 8 / 16 / 32: short 3303-3329 / 3889-3921 / 4559-4604 / 4359-4487, long 4399-4614 / 4649-4684 /
#   4146-4253 / 2935-3633: best at ~1400-3100 padded tokens a forward;
#   fp32, rows 2 / 4 / 8 / 16: short 1152-1193 / 1313-1348 / 1418-1432 / 1442-1490, long 1344-1371 / 1326-1344 /
#   1295-1325 / 1153-1218; capped at AVX2 (the AVX2 proxy): short 795-797 / 871-872 / 921-924 / 921-934, long
#   845-852 / 839-842 / 808-824 / 762-780: best at ~700-1400.
# 2048 and 1024 tokens take 24 short rows or 5 long ones in bf16 with AMX, 12 or 2 otherwise.
CPU_FORWARD_TOKENS = 1024
AMX_FORWARD_TOKENS = 2048


def padding_bounded_batches(lengths: list[int], size: int, slack: float = PADDING_SLACK,
                            indices: list[int] | None = None, max_tokens: int | None = None):
    """The indices of `lengths` (or only `indices`, whose order breaks length ties), sorted by length, in
    consecutive batches of at most `size` items, or, given `max_tokens`, of as many as fit in `max_tokens`
    padded tokens (the budget replaces the row count; a longer item still runs, alone), each cut early where
    padding it to its longest item would cost more than `slack` times its real tokens (inf: plain slices).
    Eight short requests and one long one then run as two forwards instead of nine padded to the long one: on
    a CPU the forward's cost is its padded tokens."""
    if max_tokens is None and size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"a forward's token budget must be at least 1, got {max_tokens}")
    order = sorted(range(len(lengths)) if indices is None else indices, key=lengths.__getitem__)  # stable
    group: list[int] = []
    real = 0
    for i in order:
        full = len(group) == size if max_tokens is None else lengths[i] * (len(group) + 1) > max_tokens
        if group and (full or lengths[i] * (len(group) + 1) > slack * (real + lengths[i])):
            yield group
            group, real = [], 0
        group.append(i)
        real += lengths[i]
    if group:
        yield group


def _low_precision(dtype) -> bool:
    from rm_core.models import torch_dtype

    return torch_dtype(dtype) in (torch.bfloat16, torch.float16)


def width_step(model) -> int:
    """The multiple a CPU forward's width is padded up to: LOW_PRECISION_WIDTH_STEP for bf16/fp16 weights on a
    CPU, else 1 (no padding beyond the longest sequence)."""
    weights = next(model.parameters())
    return LOW_PRECISION_WIDTH_STEP if weights.device.type == "cpu" and _low_precision(weights.dtype) else 1


def _amx_low_precision(dtype) -> bool:
    """bf16/fp16 on a CPU with AMX: where wider rows and several a forward pay (AMX_PACK_TOKENS, AMX_ROWS_PER_FORWARD)."""
    from rm_core.models import amx_cpu

    return _low_precision(dtype) and amx_cpu()


def default_batch_size(device: str | torch.device, dtype) -> int:
    """Rows a forward takes when no batch size is given: 16 on a GPU; on a CPU CPU_ROWS_PER_FORWARD, or
    AMX_ROWS_PER_FORWARD for bf16/fp16 on a CPU with AMX. `dtype`: a torch dtype or its name ("auto": fp32)."""
    if torch.device(device).type == "cuda":
        return 16
    return AMX_ROWS_PER_FORWARD if _amx_low_precision(dtype) else CPU_ROWS_PER_FORWARD


def default_forward_tokens(device: str | torch.device, dtype) -> int | None:
    """The tokens a forward of whole sequences takes (rows x the longest, before a bf16 width is rounded up to
    LOW_PRECISION_WIDTH_STEP) where no batch size is given: on a CPU AMX_FORWARD_TOKENS for bf16/fp16 with AMX,
    else CPU_FORWARD_TOKENS; None (rows: `default_batch_size`) on a CUDA GPU. Other devices are treated as a CPU,
    as `default_batch_size` does."""
    if torch.device(device).type == "cuda":
        return None
    return AMX_FORWARD_TOKENS if _amx_low_precision(dtype) else CPU_FORWARD_TOKENS


def forward_batching(device: str | torch.device, dtype, batch_size: int | None) -> tuple[int, int | None]:
    """(rows, max_tokens) for the forwards of whole sequences (`padding_bounded_batches`): a batch size given is a
    row count, with no budget; none given: `default_batch_size` rows, and on a CPU `default_forward_tokens`
    padded tokens, which then decide the rows."""
    return batch_size or default_batch_size(device, dtype), None if batch_size else default_forward_tokens(device, dtype)


def default_pack_tokens(model) -> int:
    """Tokens a tree row packs when `score_groups` is given no `pack_tokens`: 0 (one group a row) off a CPU; on a
    CPU AMX_PACK_TOKENS for bf16/fp16 weights with AMX, else PACK_TOKENS."""
    weights = next(model.parameters())
    if weights.device.type != "cpu":
        return 0
    return AMX_PACK_TOKENS if _amx_low_precision(weights.dtype) else PACK_TOKENS


# bf16 CPU inference: each nn.Linear's weight reordered once into oneDNN's blocked layout (`pack_cpu_linears`), as
# torch.compile's CPU freezing and IPEX do, instead of on every call: on an AMX Xeon a (1024 x 576) x (576 x 1536)
# product took 936 us plain, 642 us packed; (96 x 384) x (384 x 1536), a MiniLM-sized one, 87 vs 62 us.
_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # linear -> (key of its weight, packed weight)


def _weight_key(weight: torch.Tensor) -> tuple:
    """What a packed weight was made from: the tensor itself (a weak reference: a freed weight's address can be
    reused), its memory, shape and strides, and its version (bumped by every in-place change made through it)."""
    return weakref.ref(weight), weight.data_ptr(), tuple(weight.shape), weight.stride(), weight._version


class _PackedLinear(torch.nn.Linear):
    """An nn.Linear whose bf16 CPU forward without gradients runs from its packed weight (`pack_cpu_linears`); the
    class is swapped on the layer in place, so parameters, state_dict, pickling and deepcopy stay nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if (x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16 or x.device.type != "cpu"
                or weight.device.type != "cpu" or weight.is_inference()  # no version counter: a change is unseen
                or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad
                                                 or (bias is not None and bias.requires_grad)))):
            return torch.nn.functional.linear(x, weight, bias)  # training, another dtype or device: as before
        key = _weight_key(weight)
        entry = _PACKED.get(self)
        if entry is None or entry[0][0]() is not weight or entry[0][1:] != key[1:]:
            entry = _PACKED[self] = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
        return torch.ops.mkldnn._linear_pointwise(x, entry[1], bias, "none", [], "")


def _tuning_off() -> bool:
    return os.environ.get("RM_CPU_TUNING", "1") == "0"


def packs_linears(device: str | torch.device, dtype) -> bool:
    """Whether `pack_cpu_linears` packs a model of this dtype on this device: bf16 on a CPU with native bf16, when
    oneDNN can and RM_CPU_TUNING is not 0. Known before the model loads (the resume fingerprint needs it)."""
    from rm_core.models import native_bf16_cpu, torch_dtype

    if _tuning_off() or torch.device(device).type != "cpu" or torch_dtype(dtype) != torch.bfloat16:
        return False
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    return native_bf16_cpu()  # an emulated bf16 product gains nothing from a packed weight


def pack_cpu_linears(model) -> int:
    """Runs `model`'s nn.Linear layers from weights packed for oneDNN when it is a bf16 model on a CPU with native
    bf16 (`packs_linears`; the packing is made on a layer's first call and kept beside the weight: one more copy of
    the linear weights in memory). The same products as torch's (the same oneDNN kernels; a few shapes round
    differently in the last bf16 bit); a call that needs gradients, or another dtype or device, runs the plain
    layer, and a weight replaced, or changed in place through the parameter itself (an optimizer step,
    load_state_dict), is packed again. A change written through `weight.data` (peft's merge_adapter /
    merge_and_unload do that) cannot be seen: call `unpack_cpu_linears` first. Returns the number of layers set."""
    weights = next(model.parameters())
    if not packs_linears(weights.device, weights.dtype):
        return 0
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = _PackedLinear
            count += 1
    return count


def cpu_isa() -> str:
    """The best instruction set this CPU offers matrix products, as torch's cpuinfo reports it: amx_bf16 or
    avx512_bf16 where the CPU has them and ONEDNN_MAX_CPU_ISA does not cap oneDNN below them (its bf16 kernels),
    else ATen's vector level (avx512, avx2, default)."""
    from rm_core.models import cpu_capabilities

    caps = cpu_capabilities()
    for name in ("amx_bf16", "avx512_bf16"):
        if caps.get(name):
            return name
    return torch.backends.cpu.get_cpu_capability().lower()


def numerics(device: str | torch.device, dtype, model=None) -> dict:
    """What, beside the weights, the inputs and the dtype, decides a score's last bits: torch's and transformers'
    versions (a release can change the order or kernels of a forward's operations: its attention masks, RoPE, norms),
    the device (a GPU by name), and on a CPU its instruction sets (`cpu_isa`; ATen's vector level, lowered by
    ATEN_CPU_CAPABILITY; ONEDNN_MAX_CPU_ISA when set) and whether the linear layers run from packed oneDNN weights
    (as `model` does when given, else as `packs_linears` will). Every results.json records it; in bf16/fp16, where
    two of these round differently, it is part of the resume fingerprint (`numerics_fingerprint`)."""
    import transformers

    device = torch.device(device)
    found = {"torch": torch.__version__, "transformers": transformers.__version__}
    if device.type == "cuda":
        return {**found, "device": f"cuda: {torch.cuda.get_device_name(device)}"}
    if device.type != "cpu":
        return {**found, "device": device.type}
    packed = (any(type(m) is _PackedLinear for m in model.modules()) if model is not None
              else packs_linears(device, dtype))
    found.update(device="cpu", isa=cpu_isa(), aten=torch.backends.cpu.get_cpu_capability().lower(),
                 linears="packed" if packed else "torch")
    from rm_core.models import onednn_isa_cap

    if cap := onednn_isa_cap():
        found["onednn_max_isa"] = cap
    return found


def numerics_fingerprint(device: str | torch.device, dtype, model=None) -> dict | None:
    """`numerics` for bf16/fp16 weights, None for fp32. A half-precision run resumed on another kind of machine, under
    another torch or transformers release (or with RM_CPU_TUNING changed) would mix two roundings in one file: scores
    near a tie can flip between them. fp32 products agree to ~1e-6 whatever the device or the order of operations,
    so an fp32 run may resume anywhere (a release that changed the arithmetic itself, not its rounding, would be a
    behaviour change of that library, which its version in every results.json records)."""
    return numerics(device, dtype, model) if _low_precision(dtype) else None


def unpack_cpu_linears(model) -> int:
    """Undoes `pack_cpu_linears` (plain nn.Linear layers, packed copies dropped): before writing weights through
    `.data`, e.g. merging a LoRA adapter into a packed model. Returns the number of layers restored."""
    count = 0
    for module in model.modules():
        if type(module) is _PackedLinear:
            module.__class__ = torch.nn.Linear
            _PACKED.pop(module, None)
            count += 1
    return count


# glibc's malloc serves a block over its mmap threshold (128 KiB, rising to what has been freed) with fresh pages
# and gives freed heap back to the system, so a forward's activations, of a new size at each row width, fault in
# new pages again and again: in a cold bf16 pass over the 419 LLMBar pairs (AMX Xeon) mul, silu and pow took 6.9,
# 2.9 and 1.7 s against 5.1, 1.6 and 0.6 s in the next pass. `keep_freed_memory` serves blocks up to 32 MiB from
# the heap and keeps what is freed (the process holds its peak): that pass ran 7-14% faster. As setting
# GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 does at start.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Sets glibc's malloc as above for this process (CPU inference: eval, judges, the service); not where the
    user has set GLIBC_TUNABLES's malloc options or RM_CPU_TUNING=0, nor off glibc. Whether it was set."""
    import ctypes
    import platform

    if _tuning_off() or "malloc" in os.environ.get("GLIBC_TUNABLES", "") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                        TRIM_THRESHOLD))


def prepare_cpu_inference(model) -> None:
    """What a judge or evaluation does with a model it loaded itself for inference on a CPU: `pack_cpu_linears`
    and `keep_freed_memory`. RM_CPU_TUNING=0 turns both off. Nothing on other devices."""
    if _device(model).type == "cpu":
        pack_cpu_linears(model)
        keep_freed_memory()


def pad_right(seqs: list[list[int]], pad_id: int, step: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of token sequences right-padded with `pad_id` to the longest, rounded up to a
    multiple of `step`."""
    width = -(-max(len(s) for s in seqs) // step) * step
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _device(model) -> torch.device:
    return next(model.parameters()).device


def causal_attention(model) -> bool:
    """Whether every attention layer of `model` is causal, as the layers declare it (`is_causal`: decoders such as
    Llama, Qwen, Mistral, Gemma, GPT-2; not encoders such as BERT/MiniLM).

    Then a right-padded batch (`pad_right`) needs no padding mask: no real token's query reaches the
    padding after it, so without the mask the same numbers come out (bit for bit, sdpa on CPU, fp32 and bf16) from
    the causal kernel, which skips the keys past the diagonal; with a mask every (query, key) product is computed.
    SmolLM2-135M's attention on an AMX Xeon: 4 x 645 tokens 16.9 -> 11.0 ms (fp32), 7.9 -> 5.7 ms (bf16). Only for
    callers that read each sequence at positions they choose: the padding's own outputs change, and so would a
    head that finds the last token from the mask. Only transformers' own attention classes are trusted (remote code
    may declare `is_causal` and still apply no causal mask of its own when given none): any other module that
    declares the flag makes the answer False."""
    flags = [(m.is_causal, type(m).__module__) for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)]
    return bool(flags) and all(causal and module.startswith("transformers.") for causal, module in flags)


@torch.inference_mode()
def score_sequences(model, sequences: list[list[int]], pad_id: int, batch_size: int = 16,
                    padding_slack: float = PADDING_SLACK, max_tokens: int | None = None) -> list[float]:
    """One reward per token sequence, through the model's own head and pooling (right padding), in
    length-sorted batches of `batch_size` rows, or of up to `max_tokens` padded tokens where that is given,
    whose padding stays within `padding_slack` (`padding_bounded_batches`; inf: plain slices). A decoder with a
    plain linear score head (`supports_shared_prefix`; not a subclass such as ODIN's, which serves another column)
    whose attention is causal (`causal_attention`) runs its backbone without a padding mask and its head at each
    sequence's last token, as the tree rows read it (HF's classifier forward reads the last token that is not the
    pad token: the same, unless a sequence ends in the pad token itself, whose true end this reads)."""
    scores: list[float] = [0.0] * len(sequences)
    if length_dependent_rope(model):  # each sequence alone: its reward must not depend on what it is batched with
        batch_size, max_tokens = 1, None
    device = _device(model)
    step = width_step(model)
    plain_head = supports_shared_prefix(model) and type(model.score) in (torch.nn.Linear, _PackedLinear)
    base = getattr(model, model.base_model_prefix) if plain_head and causal_attention(model) else None
    for batch in padding_bounded_batches([len(s) for s in sequences], batch_size, padding_slack,
                                         max_tokens=max_tokens):
        ids, mask = pad_right([sequences[i] for i in batch], pad_id, step)
        if base is not None:
            hidden = base(input_ids=ids.to(device), use_cache=False).last_hidden_state
            last = torch.tensor([len(sequences[i]) - 1 for i in batch], device=device)
            logits = model.score(hidden[torch.arange(len(batch), device=device), last])
        else:
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        for i, value in zip(batch, logits[:, 0].float().tolist()):
            scores[i] = value
    return scores


def supports_shared_prefix(model) -> bool:
    """Decoder-only sequence classifiers (Llama, Qwen, Mistral, Gemma, ...) with a linear `score` head."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    return (
        isinstance(getattr(model, "score", None), torch.nn.Linear)
        and base is not None
        and not getattr(model.config, "is_encoder_decoder", False)
        and getattr(model.config, "model_type", "") not in ("bert", "roberta", "deberta", "deberta-v2", "electra")
    )


def shared_prefix_length(*seqs: list[int]) -> int:
    """Length of the sequences' common token prefix, leaving at least one token of each after it."""
    limit = min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs[1:]):
        n += 1
    return n


def _configs(model) -> list:
    """The model's config and, for a composite model (Gemma 3), its text config: where a setting may sit."""
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return [model.config] if text is model.config else [model.config, text]


def attention_window(model) -> int | None:
    """The shortest local-attention span of the model's layers, if any: a sliding window (read from the text
    config of a composite model such as Gemma 3's), GPT-Neo's `window_size`, Llama 4's `attention_chunk_size`."""
    spans = [getattr(c, name, None) for c in _configs(model)
             for name in ("sliding_window", "window_size", "attention_chunk_size")]
    spans = [s for s in spans if isinstance(s, int) and not isinstance(s, bool) and s > 0]
    return min(spans) if spans else None


def tree_packable(model, length: int) -> bool:
    """Whether a group whose longest sequence has `length` tokens can run as a tree row (`score_groups`): the
    attention takes a 4D mask (sdpa, eager; not flash-attention's kernels, which take none) and no local
    attention span is shorter than the sequence, so the one mask given to every layer is what each layer would
    use."""
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    window = attention_window(model)
    return implementation in ("sdpa", "eager") and (not window or length <= window)


def length_dependent_rope(model) -> bool:
    """Whether the rotary embedding changes with the longest position in the batch (longrope, dynamic NTK): a
    sequence's reward would then depend on what it is batched or packed with, so each runs alone."""
    for c in _configs(model):
        for name in ("rope_scaling", "rope_parameters"):
            value = getattr(c, name, None)
            if isinstance(value, dict) and value.get("rope_type", value.get("type")) in ("longrope", "dynamic"):
                return True
    return False


def tree_exact(model) -> bool:
    """Whether this model's tree rows give the rewards its whole sequences give, checked once per model (cached on
    it) on a small probe: two groups of two, packed into one row and as two padded rows, against each sequence
    alone. Layers that ignore the 4D mask or the restarted positions (linear-attention and state-space layers,
    ALiBi, GPT-Neo's local attention) fail it, or raise, and the model then scores whole sequences only."""
    return _probe_tree(model, "_rm_tree_exact", common=0)


def common_prefix_exact(model) -> bool:
    """Whether tree rows may also take the prefix every group of a call shares (`COMMON_PREFIX_MIN`) from a cache
    computed once: the same probe as `tree_exact`, its groups behind a common prefix. A model whose layers or
    cache do not take a prefilled cache with a 4D mask fails it and runs its tree rows whole from the start."""
    return tree_exact(model) and _probe_tree(model, "_rm_common_prefix_exact", common=COMMON_PREFIX_MIN)


@torch.inference_mode()
def _probe_once(model, flag: str, check, failed: str) -> bool:
    """`check()`, run once per model in eval mode, its answer cached on the model as `flag`: an exception counts as
    False, and a False is said once (`failed`: what the model then does instead)."""
    cached = getattr(model, flag, None)
    if cached is not None:
        return cached
    was_training = model.training
    model.eval()
    try:
        exact = bool(check())
    except Exception:  # a layer that cannot take the mask, the positions or the cache at all
        exact = False
    finally:
        model.train(was_training)
    if not exact:
        print(f"[inference] {type(model).__name__}: {failed}", flush=True)
    setattr(model, flag, exact)
    return exact


def _probe_tree(model, flag: str, common: int) -> bool:
    def check() -> bool:
        vocab = model.get_input_embeddings().weight.shape[0]
        generator = torch.Generator().manual_seed(0)

        def tokens(n: int) -> list[int]:
            return torch.randint(1, vocab, (n,), generator=generator).tolist()

        shared = tokens(common)
        groups = [[shared + p + tokens(5), shared + p + tokens(7)] for p in (tokens(9), tokens(6))]
        packed: list[list[float]] = [[], []]  # both groups in one row (a CPU's layout)
        _score_tree_rows(model, groups, [0, 1], 0, 1, 10**6, packed, common_prefix=bool(common))
        batched: list[list[float]] = [[], []]  # a group a row, two rows a forward, padded (a GPU's)
        _score_tree_rows(model, groups, [0, 1], 0, 2, 0, batched, common_prefix=bool(common))
        alone = [[score_sequences(model, [s], 0, 1)[0] for s in g] for g in groups]
        half = next(model.parameters()).dtype in (torch.bfloat16, torch.float16)
        tolerance = 3e-2 if half else 1e-4
        return all(math.isfinite(t) and abs(t - a) <= tolerance * (1 + abs(a))
                   for tree in (packed, batched) for tg, ag in zip(tree, alone) for t, a in zip(tg, ag))

    failed = ("a cached common prefix does not reproduce whole-sequence rewards; scoring each tree row whole"
              if common else "tree rows do not reproduce whole-sequence rewards; scoring whole sequences")
    return _probe_once(model, flag, check, failed)


def _tree_length(group: list[list[int]]) -> int:
    return _shared_once(sum(len(s) for s in group), len(group), shared_prefix_length(*group))


def _shared_once(total: int, n: int, shared: int) -> int:
    """Tokens of n sequences of `total` tokens in all with their `shared` prefix counted once (a tree row's width)."""
    return total - (n - 1) * shared


# A tree row's attention runs dense over its width (a 4D mask: no causal kernel, the masked products computed too),
# a whole sequence's causally, so a tree pays only where its shared prefix saves more than its attention adds. On a
# CPU, time ~ tokens + TREE_ATTENTION_COST x (query, key) products, in units of one token's forward. Long rows
# (AMX Xeon, 2026-12-04, SmolLM2-135M, machine alone; pairs of two L-token responses sharing one token, tree vs
# whole, 24 pairs: bf16 7.4 vs 5.7 s at L=512, 21.8 vs 13.3 at 1024, 85.4 vs 37.1 at 2048; fp32 212 vs 103 s at
# 2048) fit 5e-4 to 7.5e-4, but at LLMBar's widths (300-900 tokens, prompts of ~50) 6e-4 sent 102 of 419 pairs
# whole and cost 5% (12.6 / 12.7 vs 13.4 pairs/s): short rows' attention is cheaper. 2e-4 sends 44 whole and
# ties there (12.2 / 12.6 vs 12.5), keeps HH-RLHF's long prompts as trees, and runs the long sets whole: 4.44 vs
# 3.24 pairs/s at 512, 1.81 vs 1.10 at 1024, 0.60 vs 0.28 at 2048 (fp32 0.245 vs 0.113). With the instruction set
# capped at AVX2, fp32 (bench/RESULTS.md, "Scaling"): long sets 1.25x / 1.47x at 512 / 1024 whole, LLMBar -2%.
TREE_ATTENTION_COST = 2e-4
# The fewest tokens shared by every group of a call worth a cache (`_score_tree_rows`): a chat template's default
# system prompt (SmolLM2: 24 tokens, 7.2% of the token positions our LLMBar evaluation computes; Qwen2.5's: ~30).
COMMON_PREFIX_MIN = 4


def _tree_cost(tree: int) -> float:
    """The cost model's price of one tree row of `tree` tokens (dense attention over its width)."""
    return tree + TREE_ATTENTION_COST * tree * tree


def _whole_cost(length: int) -> float:
    """The cost model's price of one sequence run whole (causal attention: half the products)."""
    return length + TREE_ATTENTION_COST * length * length / 2


def tree_pays(group: list[list[int]]) -> bool:
    """Whether `group` costs less as a tree row (its prefix once, dense attention over its own width: a group packed
    with others into a wider row is charged its own width only, as measured: on LLMBar charging the row's width sent
    groups whole and cost 5%) than as whole sequences (each causal), by the model above. Long responses under a
    short prompt (RM-Bench, JudgeBench) run whole; a long prompt under short responses (HH-RLHF) runs as a tree."""
    return _tree_cost(_tree_length(group)) <= sum(_whole_cost(len(s)) for s in group)


def prefix_groups(sequences: list[list[int]], min_shared: int = COMMON_PREFIX_MIN) -> list[list[int]]:
    """The indices of `sequences` split into groups that share a token prefix worth a tree row (an RL group's
    completions of one prompt, found by their tokens alone: rendered texts carry no prompt boundary), each in the
    given order, and singletons, every index once. In lexicographic order a group is a run of neighbours; a run is
    kept as one group (sharing at least `min_shared` tokens) or split where its neighbours share least, whichever
    the cost model above (`tree_pays`) prices lower, from the bottom up: the cheapest grouping of that kind. So 16
    completions of two prompts under one system prompt make two groups, each sharing its whole prompt; completions
    that also share a first word stay in their prompt's group; a call of many prompts under one system prompt is
    not one wide tree (its dense attention would cost more than the system prompt saves) but its own groups."""
    if not sequences:
        return []
    order = sorted(range(len(sequences)), key=sequences.__getitem__)
    shared = [shared_prefix_length(sequences[a], sequences[b]) for a, b in itertools.pairwise(order)]
    lengths = [len(sequences[i]) for i in order]
    # Runs of order[lo:hi] form a tree (split each at its least shared neighbours): solved bottom-up on a stack, not
    # by recursion, which a long chain of nested prefixes could take past Python's depth limit.
    best: dict[tuple[int, int], tuple[float, list[tuple[int, int]]]] = {}  # run -> (cost, its groups' runs)
    stack = [(0, len(order), False)]
    while stack:
        lo, hi, parts_done = stack.pop()
        if hi - lo == 1:
            best[lo, hi] = (_whole_cost(lengths[lo]), [(lo, hi)])
            continue
        least = min(shared[lo:hi - 1])  # = shared_prefix_length of the whole run
        cuts = [lo] + [k + 1 for k in range(lo, hi - 1) if shared[k] == least] + [hi]
        parts = list(itertools.pairwise(cuts))  # two or more
        if not parts_done:
            stack.append((lo, hi, True))
            stack.extend((a, b, False) for a, b in parts)
            continue
        split = sum(best[p][0] for p in parts)
        whole = _tree_cost(_shared_once(sum(lengths[lo:hi]), hi - lo, least)) if least >= min_shared else math.inf
        best[lo, hi] = (whole, [(lo, hi)]) if whole <= split else (split, [run for p in parts for run in best[p][1]])
    return [sorted(order[lo:hi]) for lo, hi in best[0, len(order)][1]]


def _tree_rows(groups: list[list[list[int]]], rows: list[list[int]], common: int = 0):
    """For each row (group indices): its token ids, positions, reward read-outs [(group, [last position of each
    sequence])] and tree blocks [(start, prefix end, [suffix ends])]: per group the shared prefix, then each
    sequence's suffix, its positions restarting where the prefix ends. The first `common` tokens, which every
    group shares, are left out (they come from a cache: `_score_tree_rows`)."""
    for row in rows:
        ids: list[int] = []
        positions: list[int] = []
        reads, blocks = [], []
        for g in row:
            n = shared_prefix_length(*groups[g])
            start = len(ids)
            ids += groups[g][0][common:n]
            positions += list(range(common, n))
            ends = []
            for seq in groups[g]:
                ids += seq[n:]
                positions += list(range(n, len(seq)))
                ends.append(len(ids))
            reads.append((g, [e - 1 for e in ends]))
            blocks.append((start, start + n - common, ends))
        yield ids, positions, reads, blocks


def _tree_mask(blocks_per_row: list[list[tuple[int, int, list[int]]]], width: int,
               dtype: torch.dtype | None, cached: int = 0) -> torch.Tensor:
    """(rows, 1, width, cached + width) mask: every position sees the `cached` common prefix's keys (a cache in
    front of the row); each suffix sees its group's prefix and itself, causally; nothing across groups; a padding
    position sees only itself and the cached keys (a row with no visible key would be NaN). Boolean (True: seen)
    for dtype None, as sdpa takes it at a quarter of fp32's memory; else additive in `dtype` (eager attention)."""
    allow = torch.eye(width, dtype=torch.bool).repeat(len(blocks_per_row), 1, 1)
    for r, blocks in enumerate(blocks_per_row):
        for start, prefix_end, ends in blocks:
            allow[r, start:prefix_end, start:prefix_end] = torch.ones(prefix_end - start, prefix_end - start,
                                                                      dtype=torch.bool).tril()
            begin = prefix_end
            for end in ends:
                allow[r, begin:end, start:prefix_end] = True
                allow[r, begin:end, begin:end] = torch.ones(end - begin, end - begin, dtype=torch.bool).tril()
                begin = end
    if cached:
        allow = torch.cat([torch.ones(len(blocks_per_row), width, cached, dtype=torch.bool), allow], dim=2)
    if dtype is None:
        return allow[:, None]
    return torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)[:, None]


@torch.inference_mode()
def score_groups(model, groups: list[list[list[int]]], pad_id: int, batch_size: int = 16,
                 share_prefix: bool | None = None, pack_tokens: int | None = None,
                 max_tokens: int | None = None, whole_rows: int | None = None) -> list[list[float]]:
    """One reward per token sequence, for groups of sequences that share a prefix (a pair's chosen and rejected,
    a prompt's best-of-N candidates).

    Shared-prefix path (decoders with a score head, `supports_shared_prefix`): each group is one tree row, its
    shared prefix (the prompt and whatever the template renders before the responses diverge) followed by each
    sequence's suffix, whose positions restart where the prefix ends and whose mask hides the other suffixes.
    One forward then gives every reward, the prefix computed once: the same numbers as the whole sequences, with
    no per-pair cache to copy. Rows hold several groups, block-diagonal, up to `pack_tokens` tokens (the default on a CPU,
    `default_pack_tokens`: PACK_TOKENS, or AMX_PACK_TOKENS in bf16/fp16 with AMX; there a forward's cost is its
    tokens and a bigger one runs at a better rate), `batch_size` rows a forward; on other devices
    (`pack_tokens` 0) one group a row, `batch_size` rows a forward, length-sorted within PADDING_SLACK. The
    prefix every tree group shares, from COMMON_PREFIX_MIN tokens (a template's default system prompt), runs
    once into a cache the rows start from (`common_prefix_exact`: a model that cannot take it keeps it in each
    row). Groups a tree row cannot take (`tree_packable`), on a CPU groups a tree does not pay for (`tree_pays`:
    long responses under a short prompt), and groups whose tree row gave a non-finite reward, run as whole sequences
    (`score_sequences`: `whole_rows` rows a forward, default 2 x `batch_size`: a pair's two sequences, or up to
    `max_tokens` padded tokens where given)."""
    if share_prefix is None or share_prefix:  # asked for, or by default: only where it gives the same rewards
        share_prefix = (supports_shared_prefix(model) and not length_dependent_rope(model)
                        and tree_exact(model))
    if pack_tokens is None:
        pack_tokens = default_pack_tokens(model)
    results: list[list[float]] = [[0.0] * len(g) for g in groups]
    tree, whole = [], []
    for g, seqs in enumerate(groups):
        if seqs:
            as_tree = share_prefix and tree_packable(model, max(map(len, seqs)))
            if as_tree and pack_tokens:  # on a CPU (packed rows), only where the tree pays
                as_tree = tree_pays(seqs)
            (tree if as_tree else whole).append(g)
    if tree:
        _score_tree_rows(model, groups, tree, pad_id, batch_size, pack_tokens, results)
        # A NaN or inf reaches the other groups of its row, and the other suffixes of its group, through masked
        # attention (a weight of 0 times NaN is NaN): a group with a non-finite reward is scored again whole, so
        # each sequence gets its own reward, non-finite only where its own forward is.
        whole += [g for g in tree if not all(math.isfinite(x) for x in results[g])]
    if whole:
        flat = score_sequences(model, [s for g in whole for s in groups[g]], pad_id, whole_rows or batch_size * 2,
                               max_tokens=max_tokens)
        k = 0
        for g in whole:
            results[g] = flat[k:k + len(groups[g])]
            k += len(groups[g])
    return results


def score_pairs(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 16,
                share_prefix: bool | None = None, pack_tokens: int | None = None,
                max_tokens: int | None = None) -> list[tuple[float, float]]:
    """(chosen_reward, rejected_reward) for each (chosen_ids, rejected_ids) pair: `score_groups` with groups of
    two (one tree row a pair: the prompt once, each response seeing only the prompt and itself)."""
    scores = score_groups(model, [list(pair) for pair in pairs], pad_id, batch_size, share_prefix, pack_tokens,
                          max_tokens)
    return [(chosen, rejected) for chosen, rejected in scores]


def _cache_argument(module) -> str:
    """transformers 5.24 names a forward's cache argument (and output) `cache`, earlier 5.x releases
    `past_key_values`."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def _prefix_cache(module, ids: list[int], **kwargs) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Each layer's (keys, values) of one forward of `ids` through `module` (a backbone, or a causal LM given
    logits_to_keep=1), for `_from_cache`; None where the forward kept no cache (the caller then runs every token)."""
    out = module(input_ids=torch.tensor([ids], device=_device(module)), use_cache=True, **kwargs)
    filled = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return None if filled is None else [(layer.keys, layer.values) for layer in filled.layers]


@functools.cache
def _prefix_layer_class():
    from transformers.cache_utils import DynamicLayer

    class PrefixLayer(DynamicLayer):
        """A layer's cached prefix that a forward reads and does not grow: its keys and values are joined to the
        forward's own and handed back, not kept, so each layer's are freed once the layer is done (as without a
        cache; a growing cache would hold every layer's for the whole batch until the forward ends)."""

        def update(self, key_states, value_states, *args, **kwargs):
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    return PrefixLayer


def _from_cache(module, cache: list | None, rows: int) -> dict:
    """The forward arguments that start `rows` rows from `cache` (`_prefix_cache`), each row reading the same keys
    and values (expanded, not copied); none without a cache."""
    if cache is None:
        return {"use_cache": False}
    from transformers import DynamicCache

    layers = []
    for keys, values in cache:
        layer = _prefix_layer_class()()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)
        layers.append(layer)
    past = DynamicCache()  # empty; its layers are these read-only ones (transformers 5.x: Cache.layers)
    past.layers = layers
    return {"use_cache": True, _cache_argument(module): past}


def _score_tree_rows(model, groups, todo: list[int], pad_id: int, batch_size: int, pack_tokens: int | None,
                     results: list, common_prefix: bool | None = None) -> None:
    """`score_groups`'s tree path over the groups `todo`, writing their rewards into `results`. The prefix all of
    them share (a chat template's system prompt, say SmolLM2's default one: 24 tokens of LLMBar's ~300 a pair), if
    at least COMMON_PREFIX_MIN tokens, runs once into a cache that every row's forward starts from (where
    `common_prefix_exact`, or common_prefix=True)."""
    device = _device(model)
    sdpa = getattr(model.config, "_attn_implementation", None) == "sdpa"
    dtype = None if sdpa else next(model.parameters()).dtype  # the mask's: boolean for sdpa, else additive
    step = width_step(model)
    if pack_tokens is None:
        pack_tokens = default_pack_tokens(model)
    base = getattr(model, model.base_model_prefix)
    common = shared_prefix_length(*(s for g in todo for s in groups[g])) if len(todo) > 1 else 0
    if common < COMMON_PREFIX_MIN or not (common_prefix_exact(model) if common_prefix is None else common_prefix):
        common = 0
    cache = _prefix_cache(base, groups[todo[0]][0][:common]) if common else None
    common = common if cache is not None else 0
    tree_len = {g: _tree_length(groups[g]) - common for g in todo}
    rows: list[list[int]] = []
    for g in sorted(todo, key=tree_len.__getitem__):  # consecutive groups by length fill a row up to pack_tokens
        if rows and sum(tree_len[h] for h in rows[-1]) + tree_len[g] <= pack_tokens:
            rows[-1].append(g)
        else:
            rows.append([g])
    built = list(_tree_rows(groups, rows, common))
    for batch in padding_bounded_batches([len(ids) for ids, *_ in built], batch_size):
        ids, _ = pad_right([built[b][0] for b in batch], pad_id, step)
        positions, _ = pad_right([built[b][1] for b in batch], 0, step)
        mask = _tree_mask([built[b][3] for b in batch], ids.shape[1], dtype, common)
        hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      **_from_cache(base, cache, len(batch))).last_hidden_state
        at = [(row, pos) for row, b in enumerate(batch) for _, lasts in built[b][2] for pos in lasts]
        rows_at, positions_at = (torch.tensor(x, device=device) for x in zip(*at))
        rewards = model.score(hidden[rows_at, positions_at]).float()[:, 0].tolist()
        k = 0
        for b in batch:
            for g, lasts in built[b][2]:
                results[g] = rewards[k:k + len(lasts)]
                k += len(lasts)


@torch.inference_mode()
def next_token_choice_probs(model, sequences: list[list[int]], pad_id: int, token_ids: list[int],
                            batch_size: int = 1, max_tokens: int | None = None,
                            renormalise: bool = True, common_prefix: bool | None = None) -> list[list[float]]:
    """For each prompt (token ids), the next-token distribution of a causal LM restricted to `token_ids` and
    renormalised over them: the read-out of generative judges (pair-PM's A/B, an LLM judge's A/B/C). With
    renormalise=False, each token's probability under the whole vocabulary (their sum: the mass the model puts
    on the choices at all).
    Length-sorted, left-padded batches (`batch_size` rows, or up to `max_tokens` padded tokens); positions count real
    tokens only, so a padded row sees the positions it would see alone. The prefix all prompts share (a judge's
    system prompt, instructions and rubrics), from COMMON_PREFIX_MIN tokens, runs once into a cache every batch
    starts from (where `choice_cache_exact`, or common_prefix=True); the padding then sits between it and the rest,
    masked."""
    device = _device(model)
    pick = torch.tensor(token_ids, device=device)
    out: list[list[float]] = [[] for _ in sequences]
    common = shared_prefix_length(*sequences) if len(sequences) > 1 else 0
    window = attention_window(model)  # the cache's layers are all global: only prompts within every layer's span
    if (common < COMMON_PREFIX_MIN or (window and max(map(len, sequences)) > window)
            or not (choice_cache_exact(model) if common_prefix is None else common_prefix)):
        common = 0
    cache = _prefix_cache(model, sequences[0][:common], logits_to_keep=1) if common else None
    common = common if cache is not None else 0
    rest = [s[common:] for s in sequences]
    for batch in padding_bounded_batches([len(s) for s in rest], batch_size, max_tokens=max_tokens):
        width = max(len(rest[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            seq = rest[i]
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0) + common
        if common:
            mask = torch.cat([torch.ones(len(batch), common, dtype=torch.long), mask], dim=1)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=1, **_from_cache(model, cache, len(batch))).logits[:, -1, :]
        logits = logits.float()
        probs = torch.softmax(logits[:, pick], dim=-1) if renormalise else torch.softmax(logits, dim=-1)[:, pick]
        for i, row in zip(batch, probs.tolist()):
            out[i] = row
    return out


# the model attribute that holds choice_cache_exact's once-per-model answer (bench/choice_cache_speed sets it to
# False to measure the read-out without the cache)
CHOICE_CACHE_FLAG = "_rm_choice_cache_exact"


def choice_cache_exact(model) -> bool:
    """Whether `next_token_choice_probs` may take the prompts' common prefix from a cache for this causal LM:
    checked once per model (cached on it) on a probe of three prompts behind one prefix, with the cache and
    without. A model whose rotary embedding depends on the longest position (longrope, dynamic) is not tried."""
    def check() -> bool:
        if length_dependent_rope(model):
            return False
        vocab = model.get_input_embeddings().weight.shape[0]
        generator = torch.Generator().manual_seed(0)
        shared = torch.randint(1, vocab, (COMMON_PREFIX_MIN + 2,), generator=generator).tolist()
        prompts = [shared + torch.randint(1, vocab, (n,), generator=generator).tolist() for n in (3, 7, 5)]
        with_cache, without = (next_token_choice_probs(model, prompts, 0, list(range(vocab)), 3, renormalise=False,
                                                       common_prefix=flag) for flag in (True, False))
        # total variation between the whole next-token distributions: SmolLM2-135M-Instruct 0-0.03 in bf16 (0 in
        # fp32) with the cache, 0.49-0.67 when the prefix is left out (the log-probabilities of random tokens, tried
        # first, moved by more than 0.1 in bf16)
        half = next(model.parameters()).dtype in (torch.bfloat16, torch.float16)
        tolerance = 1e-1 if half else 1e-3
        return all(math.isfinite(sum(pa)) and 0.5 * sum(abs(a - b) for a, b in zip(pa, pb)) <= tolerance
                   for pa, pb in zip(with_cache, without))

    return _probe_once(model, CHOICE_CACHE_FLAG, check, "prompts' common prefix not taken from a cache")
