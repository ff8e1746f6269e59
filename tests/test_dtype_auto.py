"""--dtype auto (issue 22): bf16 only where the hardware computes it natively, the choice printed and recorded,
and a resume never mixes dtypes."""

from __future__ import annotations

import argparse
import json
import re
import sys

import pytest
import torch
import transformers

from rm_core import models

torch.set_num_threads(1)

NATIVE = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": True}
AMX = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "amx_tile": True, "amx_bf16": True}
AVX512_ONLY = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bw": True}  # emulated bf16
AVX2_ONLY = {"architecture": "x86_64", "avx2": True}


def _cpu(monkeypatch, caps):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("caps, native", [(NATIVE, True), (AMX, True), (AVX512_ONLY, False), (AVX2_ONLY, False)])
def test_native_bf16_cpu_reads_the_instruction_sets(monkeypatch, caps, native):
    _cpu(monkeypatch, caps)
    assert models.native_bf16_cpu() is native
    expected = torch.bfloat16 if native else torch.float32
    assert models.resolve_dtype("auto", "cpu") == expected
    assert models.resolve_dtype(None) == expected  # default device: cpu here


def test_explicit_dtypes_are_kept_whatever_the_cpu(monkeypatch):
    _cpu(monkeypatch, NATIVE)
    assert models.resolve_dtype("float32", "cpu") == torch.float32
    assert models.resolve_dtype(torch.float16, "cpu") == torch.float16
    _cpu(monkeypatch, AVX2_ONLY)
    assert models.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert models.dtype_choice("bfloat16", "cpu") == ("bfloat16", "as asked")


def test_gpu_auto_follows_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert models.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    name, why = models.dtype_choice("auto", "cuda:0")
    assert (name, why) == ("float32", "auto: a GPU without bf16")


def test_dtype_choice_says_why(monkeypatch):
    _cpu(monkeypatch, AVX2_ONLY)
    name, why = models.dtype_choice("auto", "cpu")
    assert name == "float32" and "no native bf16" in why and why.startswith("auto:")
    _cpu(monkeypatch, NATIVE)
    assert models.dtype_choice("auto", "cpu") == ("bfloat16", "auto: this CPU has native bf16 (AVX512-BF16/AMX)")


def test_training_keeps_fp32_weights_for_auto():
    # a recipe's "auto" is fp32 weights (mixed precision is the Trainer's flag), never the machine's choice
    assert models.torch_dtype("auto") == torch.float32


def test_every_inference_command_defaults_to_auto():
    from eval.report import make_parser as report_parser
    from eval.reward_bench import make_parser as rb_parser
    from judges.serve import make_parser as serve_parser

    assert rb_parser().parse_args(["--model", "m"]).dtype == "auto"
    assert report_parser().parse_args(["--judge", "a=m", "--bench", "llmbar", "--output_dir", "o"]).dtype == "auto"
    assert serve_parser().parse_args(["--judge", "m"]).dtype == "auto"
    with pytest.raises(SystemExit):
        rb_parser().parse_args(["--model", "m", "--dtype", "fp8"])


def test_settle_machine_options(monkeypatch, capsys):
    from eval.runner import settle_machine_options
    from rm_core.inference import CPU_ROWS_PER_FORWARD

    _cpu(monkeypatch, NATIVE)
    args = argparse.Namespace(model="ckpt", dtype="auto", batch_size=None)
    settle_machine_options(args, torch.device("cpu"))
    assert (args.dtype, args.batch_size) == ("bfloat16", CPU_ROWS_PER_FORWARD)
    assert "[eval] dtype bfloat16 (auto: this CPU has native bf16" in capsys.readouterr().out
    _cpu(monkeypatch, AVX2_ONLY)
    settle_machine_options(args, torch.device("cpu"))  # settled once: a second call changes nothing
    assert args.dtype == "bfloat16" and capsys.readouterr().out == ""
    api = argparse.Namespace(model="openai:gpt-x", dtype="auto", batch_size=4)
    settle_machine_options(api, torch.device("cpu"))
    assert api.dtype == "auto" and "API" in api.dtype_reason


def test_amx_cpus_get_wider_rows_and_more_a_forward_in_bf16_only(monkeypatch):
    from eval.runner import settle_machine_options
    from judges.rm_judge import RewardModelJudge
    from rm_core.inference import (
        AMX_FORWARD_TOKENS,
        AMX_PACK_TOKENS,
        AMX_ROWS_PER_FORWARD,
        CPU_ROWS_PER_FORWARD,
        PACK_TOKENS,
        default_batch_size,
        default_pack_tokens,
    )
    from rm_core.testing import tiny_reward_model

    assert (AMX_PACK_TOKENS, AMX_ROWS_PER_FORWARD) != (PACK_TOKENS, CPU_ROWS_PER_FORWARD)  # else the checks below could not tell them apart
    model, tokenizer = tiny_reward_model()
    for caps, dtype, rows, pack in [(AMX, torch.bfloat16, AMX_ROWS_PER_FORWARD, AMX_PACK_TOKENS),
                                    (AMX, torch.float16, AMX_ROWS_PER_FORWARD, AMX_PACK_TOKENS),
                                    (AMX, torch.float32, CPU_ROWS_PER_FORWARD, PACK_TOKENS),
                                    (NATIVE, torch.bfloat16, CPU_ROWS_PER_FORWARD, PACK_TOKENS),  # no AMX
                                    (AVX2_ONLY, torch.float32, CPU_ROWS_PER_FORWARD, PACK_TOKENS)]:
        _cpu(monkeypatch, caps)
        assert default_batch_size("cpu", dtype) == rows, (caps, dtype)
        assert default_pack_tokens(model.to(dtype)) == pack, (caps, dtype)
    assert default_batch_size("cuda", torch.bfloat16) == 16 and default_batch_size("cpu", "auto") == CPU_ROWS_PER_FORWARD

    _cpu(monkeypatch, AMX)
    assert RewardModelJudge(model.to(torch.bfloat16), tokenizer).batch_size == AMX_ROWS_PER_FORWARD
    assert RewardModelJudge(model.to(torch.float32), tokenizer).batch_size == CPU_ROWS_PER_FORWARD
    auto = argparse.Namespace(model="ckpt", dtype="auto", batch_size=None)
    settle_machine_options(auto, torch.device("cpu"), announce=False)  # the dtype is settled first, then the batch
    assert (auto.dtype, auto.batch_size, auto.forward_tokens) == ("bfloat16", AMX_ROWS_PER_FORWARD, AMX_FORWARD_TOKENS)
    fp32 = argparse.Namespace(model="ckpt", dtype="float32", batch_size=None)
    settle_machine_options(fp32, torch.device("cpu"), announce=False)
    assert (fp32.dtype, fp32.batch_size) == ("float32", CPU_ROWS_PER_FORWARD)
    given = argparse.Namespace(model="ckpt", dtype="auto", batch_size=5)
    settle_machine_options(given, torch.device("cpu"), announce=False)
    assert given.batch_size == 5 and getattr(given, "forward_tokens", None) is None  # a row count, no budget


def test_hf_backend_cache_keys_differ_by_dtype(monkeypatch, tmp_path):
    from judges.backends import HFBackend
    from rm_core.testing import save_tiny_backbone

    save_tiny_backbone(tmp_path / "lm")
    _cpu(monkeypatch, AVX2_ONLY)
    fp32 = HFBackend(str(tmp_path / "lm"), device="cpu", cache_dir=tmp_path / "cache")
    _cpu(monkeypatch, NATIVE)
    bf16 = HFBackend(str(tmp_path / "lm"), device="cpu", cache_dir=tmp_path / "cache")
    assert next(fp32.model.parameters()).dtype == torch.float32
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert fp32.cache_tag.startswith("@") and bf16.cache_tag.startswith("@") and fp32.cache_tag != bf16.cache_tag
    _cpu(monkeypatch, AMX)  # bf16 answers of another kind of CPU round otherwise: another key, never reused
    amx = HFBackend(str(tmp_path / "lm"), device="cpu", cache_dir=tmp_path / "cache")
    assert amx.cache_tag not in (fp32.cache_tag, bf16.cache_tag)
    from rm_core.inference import AMX_ROWS_PER_FORWARD, CPU_ROWS_PER_FORWARD

    # prompts a forward: the machine's default unless given
    assert (fp32.batch_size, bf16.batch_size, amx.batch_size) == (CPU_ROWS_PER_FORWARD, CPU_ROWS_PER_FORWARD,
                                                                  AMX_ROWS_PER_FORWARD)
    assert HFBackend(str(tmp_path / "lm"), device="cpu", batch_size=3).batch_size == 3
    _cpu(monkeypatch, NATIVE)
    assert HFBackend(str(tmp_path / "lm"), device="cpu", cache_dir=tmp_path / "cache").cache_tag == bf16.cache_tag


def test_eval_records_the_choice_and_refuses_a_mixed_resume(monkeypatch, tmp_path, capsys):
    from eval.reward_bench import evaluate, make_parser
    from rm_core.inference import CPU_FORWARD_TOKENS
    from rm_core.testing import tiny_reward_model

    model, tokenizer = tiny_reward_model(seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    rows = [{"id": f"r{i}", "subset": "llmbar-natural", "prompt": f"Question {i}?", "chosen": "A fine answer " * (i + 1),
             "rejected": "no"} for i in range(4)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["--model", str(tmp_path / "ckpt"), "--dataset", str(data), "--output_dir", str(out)]
    _cpu(monkeypatch, NATIVE)
    summary = evaluate(make_parser().parse_args(argv))
    assert summary["dtype"] == "bfloat16" and summary["dtype_reason"].startswith("auto: this CPU has native")
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["dtype"] == "bfloat16" and saved["fingerprint"]["settings"]["dtype"] == "bfloat16"
    assert saved["numerics"]["isa"] == "avx512_bf16"
    assert saved["forward_tokens"] == CPU_FORWARD_TOKENS  # no --batch_size: whole sequences by a token budget
    assert saved["fingerprint"]["settings"]["numerics"] == {**saved["numerics"], "batch_size": saved["batch_size"],
                                                            "forward_tokens": CPU_FORWARD_TOKENS, "processes": 1}
    assert "[eval] dtype bfloat16" in capsys.readouterr().out
    from eval.runner import load_judge  # the judge the CLI loads takes the same budget; a --batch_size is a row count

    judge = load_judge(make_parser().parse_args(argv), torch.device("cpu"))
    assert (judge.batch_size, judge.max_tokens) == (saved["batch_size"], CPU_FORWARD_TOKENS)
    judge = load_judge(make_parser().parse_args(argv + ["--batch_size", "3"]), torch.device("cpu"))
    assert (judge.batch_size, judge.max_tokens) == (3, None)
    from eval.runner import apply_token_budget

    generating = argparse.Namespace(batch_size=2)  # a judge without whole-sequence forwards keeps its rows
    assert apply_token_budget(generating, CPU_FORWARD_TOKENS) == argparse.Namespace(batch_size=2)
    # the same command on a machine where auto means float32: the bf16 results are not rescored into, nor mixed
    from rm_core.resume import ResumeError

    _cpu(monkeypatch, AVX2_ONLY)
    with pytest.raises(ResumeError, match="dtype"):
        evaluate(make_parser().parse_args(argv))


def test_numerics_name_the_device_kind_and_kernels(monkeypatch):
    from rm_core.inference import numerics, numerics_fingerprint, packs_linears

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    for caps, isa in [(AMX, "amx_bf16"), (NATIVE, "avx512_bf16"), (AVX2_ONLY, "avx2")]:
        _cpu(monkeypatch, caps)
        found = numerics("cpu", "bfloat16")
        assert found == {"torch": torch.__version__, "transformers": transformers.__version__, "device": "cpu",
                         "isa": isa, "aten": "avx2",
                         "linears": "packed" if packs_linears("cpu", "bfloat16") else "torch"}
        assert numerics_fingerprint("cpu", torch.bfloat16) == found
        assert numerics("cpu", "float32")["linears"] == "torch"  # fp32 runs torch's own products
        assert numerics_fingerprint("cpu", "float32") is None  # fp32 agrees to ~1e-6 anywhere: resumable anywhere
    assert not packs_linears("cpu", "bfloat16")  # AVX2: emulated bf16 is never packed
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a cap set by environment is a kernel choice too
    assert numerics("cpu", "bfloat16")["onednn_max_isa"] == "AVX2"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert numerics_fingerprint("cuda:0", "float16") == {"torch": torch.__version__,
                                                         "transformers": transformers.__version__,
                                                         "device": "cuda: NVIDIA H200"}
    monkeypatch.setenv("RM_CPU_TUNING", "0")
    _cpu(monkeypatch, AMX)
    assert numerics("cpu", "bfloat16")["linears"] == "torch"


def _rows_file(tmp_path):
    rows = [{"id": f"r{i}", "subset": "llmbar-natural", "prompt": f"Question {i}?", "chosen": "Fine " * (i + 1),
             "rejected": "no"} for i in range(3)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return data


def test_a_half_precision_run_is_not_resumed_on_another_kind_of_cpu_fp32_is(monkeypatch, tmp_path):
    """bf16 scores from an AVX512-BF16 CPU and an AMX one round differently: one output folder never holds both.
    fp32 products agree to ~1e-6 on every CPU: the same fp32 command scores again on the other machine."""
    from eval.reward_bench import evaluate, make_parser
    from rm_core.resume import ResumeError
    from rm_core.testing import save_tiny_reward_model

    ckpt = save_tiny_reward_model(tmp_path / "ckpt")
    data = _rows_file(tmp_path)
    half = ["--model", str(ckpt), "--dataset", str(data), "--output_dir", str(tmp_path / "bf16")]
    _cpu(monkeypatch, NATIVE)
    assert evaluate(make_parser().parse_args(half))["numerics"]["isa"] == "avx512_bf16"
    _cpu(monkeypatch, AMX)  # auto is bf16 here too: only the kernels differ
    with pytest.raises(ResumeError, match=r"settings\.numerics\.isa avx512_bf16 -> amx_bf16"):
        evaluate(make_parser().parse_args(half))
    full = ["--model", str(ckpt), "--dataset", str(data), "--output_dir", str(tmp_path / "fp32"), "--dtype", "float32"]
    first = evaluate(make_parser().parse_args(full))
    assert "numerics" not in first["fingerprint"]["settings"] and first["numerics"]["isa"] == "amx_bf16"
    _cpu(monkeypatch, NATIVE)
    again = evaluate(make_parser().parse_args(full))
    assert again["numerics"]["isa"] == "avx512_bf16" and again["accuracy"] == first["accuracy"]


def test_a_half_precision_run_is_not_resumed_under_another_transformers_release(monkeypatch, tmp_path):
    """A transformers release can change how a model's forward computes (masks, RoPE, norms): in bf16 the scores of
    two releases are not mixed in one folder; the version is in every results.json."""
    from eval.reward_bench import evaluate, make_parser
    from rm_core.resume import ResumeError
    from rm_core.testing import save_tiny_reward_model

    ckpt = save_tiny_reward_model(tmp_path / "ckpt")
    half = ["--model", str(ckpt), "--dataset", str(_rows_file(tmp_path)), "--output_dir", str(tmp_path / "bf16")]
    _cpu(monkeypatch, NATIVE)
    first = evaluate(make_parser().parse_args(half))
    assert first["numerics"]["transformers"] == transformers.__version__
    # the module as imported now (loading a model can put another module object under the name)
    monkeypatch.setattr(sys.modules["transformers"], "__version__", "99.0.0")
    was = re.escape(first["numerics"]["transformers"])
    with pytest.raises(ResumeError, match=rf"settings\.numerics\.transformers {was} -> 99\.0\.0"):
        evaluate(make_parser().parse_args(half))


def test_a_bf16_embedding_cache_is_read_but_not_extended_on_another_kind_of_cpu(monkeypatch, tmp_path):
    """Shards computed on an AVX512-BF16 CPU are read on an AMX one (a cache built on the training machine serves the
    evaluation), but new items are not computed into it there: one cache, one rounding. fp32 caches mix freely."""
    from rm_core.embeddings import extract_embeddings, load_backbone
    from rm_core.resume import ResumeError
    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "backbone", seed=0)
    items = [([{"role": "user", "content": f"question {i}"}], f"answer {i}") for i in range(3)]
    cache = tmp_path / "cache"
    _cpu(monkeypatch, NATIVE)
    model, tok = load_backbone(str(path), "bfloat16", "cpu")
    first = extract_embeddings(model, tok, items[:2], cache, str(path), max_length=64)
    assert first["stats"]["computed"] == 2 and (cache / "numerics.json").is_file()
    _cpu(monkeypatch, AMX)
    model, tok = load_backbone(str(path), "bfloat16", "cpu")
    again = extract_embeddings(model, tok, items[:2], cache, str(path), max_length=64)  # all cached: read
    assert again["stats"]["cached"] == 2 and torch.equal(again["embeddings"], first["embeddings"])
    with pytest.raises(ResumeError, match=r"embedding cache .*other numerics \(forward_tokens 1024 -> 2048; "
                                          r"isa avx512_bf16 -> amx_bf16\); computing the 1 missing item"):
        extract_embeddings(model, tok, items, cache, str(path), max_length=64)
    fresh = extract_embeddings(model, tok, items, cache, str(path), max_length=64, overwrite=True)
    assert fresh["stats"]["computed"] == 3
    model32, tok = load_backbone(str(path), "float32", "cpu")
    extract_embeddings(model32, tok, items[:2], tmp_path / "fp32", str(path), max_length=64)
    _cpu(monkeypatch, NATIVE)
    assert extract_embeddings(model32, tok, items, tmp_path / "fp32", str(path), max_length=64)["stats"]["computed"] == 1


def test_a_bf16_embedding_cache_is_not_extended_with_another_forward_layout(monkeypatch, tmp_path):
    """bf16 rounding moves with the rows a forward, so a cache built at a row count is not extended by the token
    budget (or another row count): refused, naming both; the same layout extends it; fp32 caches mix freely."""
    from rm_core.embeddings import extract_embeddings, load_backbone
    from rm_core.resume import ResumeError
    from rm_core.testing import save_tiny_backbone

    path = save_tiny_backbone(tmp_path / "backbone", seed=0)
    items = [([{"role": "user", "content": f"question {i}"}], f"answer {i}") for i in range(4)]
    cache = tmp_path / "cache"
    _cpu(monkeypatch, NATIVE)
    model, tok = load_backbone(str(path), "bfloat16", "cpu")
    assert extract_embeddings(model, tok, items[:2], cache, str(path), max_length=64, batch_size=4)["stats"]["computed"] == 2
    with pytest.raises(ResumeError, match=r"other numerics \(batch_size 4 -> \(none\); forward_tokens \(none\) -> 1024\)"):
        extract_embeddings(model, tok, items[:3], cache, str(path), max_length=64)
    with pytest.raises(ResumeError, match=r"other numerics \(batch_size 4 -> 1\)"):
        extract_embeddings(model, tok, items[:3], cache, str(path), max_length=64, batch_size=1)
    assert extract_embeddings(model, tok, items[:3], cache, str(path), max_length=64, batch_size=4)["stats"]["computed"] == 1
    model32, tok = load_backbone(str(path), "float32", "cpu")
    extract_embeddings(model32, tok, items[:2], tmp_path / "fp32", str(path), max_length=64, batch_size=4)
    assert extract_embeddings(model32, tok, items, tmp_path / "fp32", str(path), max_length=64)["stats"]["computed"] == 2


def test_collect_preferences_refuses_to_mix_verdicts_of_two_dtypes(monkeypatch, tmp_path):
    """A local judge loads with dtype auto: fp32 on an AVX2 CPU, bf16 on one with native bf16. Labels started on
    one and resumed on the other would mix two judges' verdicts in one labels.jsonl: refused, naming the dtype."""
    import json

    from decision_tree import collect_preferences
    from rm_core.resume import ResumeError
    from rm_core.testing import save_tiny_reward_model

    rm = save_tiny_reward_model(tmp_path / "rm")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                             for i in range(4)), encoding="utf-8")
    argv = ["--pairs", str(pairs), "--judge", f"rm={rm}", "--output_dir", str(tmp_path / "labels"), "--quiet"]
    _cpu(monkeypatch, AVX2_ONLY)
    collect_preferences.main(argv)
    _cpu(monkeypatch, NATIVE)
    with pytest.raises(ResumeError, match=r"judges.rm.dtype float32 -> bfloat16"):
        collect_preferences.main(argv)
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "labels-bf16")
    collect_preferences.main(argv)  # bf16 verdicts of an AVX512-BF16 CPU ...
    _cpu(monkeypatch, AMX)
    with pytest.raises(ResumeError, match=r"judges.rm.numerics.isa avx512_bf16 -> amx_bf16"):
        collect_preferences.main(argv)  # ... are not continued on an AMX one


@pytest.mark.parametrize("cap, native, amx, isa", [
    (None, True, True, "amx_bf16"),
    ("AVX512_CORE_AMX", True, True, "amx_bf16"),
    ("avx10_1_512_amx_fp16", True, True, "amx_bf16"),  # a superset of AMX
    ("avx512_core_bf16", True, False, "avx512_bf16"),  # case-insensitive, as oneDNN reads it
    ("AVX512_CORE_BF16", True, False, "avx512_bf16"),  # oneDNN may not use the tiles: no AMX rows
    ("AVX512_CORE_FP16", True, False, "avx512_bf16"),
    ("AVX512_CORE_VNNI", False, False, None),  # bf16 emulated: auto picks fp32
    ("AVX2", False, False, None),
])
def test_a_onednn_isa_cap_is_what_auto_and_the_row_defaults_follow(monkeypatch, cap, native, amx, isa):
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 makes torch's bf16 products emulated, below AVX512_CORE_AMX keeps
    them off the tiles: the auto dtype, the AMX row defaults and the recorded numerics follow the cap, not the
    hardware alone."""
    from rm_core import inference

    _cpu(monkeypatch, AMX | {"avx512_bf16": True})
    if cap is not None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert models.native_bf16_cpu() is native and models.amx_cpu() is amx
    assert models.resolve_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    rows = inference.default_batch_size("cpu", torch.bfloat16)
    assert rows == (inference.AMX_ROWS_PER_FORWARD if amx else inference.CPU_ROWS_PER_FORWARD)
    found = inference.numerics("cpu", torch.bfloat16)
    assert found["isa"] == (isa or torch.backends.cpu.get_cpu_capability().lower())
    assert found.get("onednn_max_isa") == (cap.upper() if cap else None)
    if not native:
        assert f"capped at {cap.upper()}" in models.dtype_choice("auto", "cpu")[1]


@pytest.mark.parametrize("value", ["DEFAULT", "all", " "])
def test_default_or_all_is_no_cap_and_not_recorded(monkeypatch, value):
    from rm_core import inference

    _cpu(monkeypatch, AMX)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", value)
    assert models.amx_cpu() and models.onednn_isa_cap() is None
    assert "onednn_max_isa" not in inference.numerics("cpu", torch.bfloat16)


def test_onednn_name_of_the_cap_wins_over_the_older_dnnl_one(monkeypatch):
    _cpu(monkeypatch, AMX | {"avx512_bf16": True})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert models.native_bf16_cpu() and not models.amx_cpu()


def test_the_older_dnnl_name_of_the_cap_counts_too(monkeypatch):
    _cpu(monkeypatch, AMX)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert models.native_bf16_cpu() is False and models.resolve_dtype("auto", "cpu") == torch.float32
