"""Preference pairs -> the pair-PM chat: the model reads a conversation and two responses and answers A or B.

The template (one user message, rendered with the model's chat template and its generation prompt; the
assistant's answer is ONE token, the letter):

    [CONTEXT]
    {the conversation so far: the user turn, or "User: ... / Assistant: ..." turns}

    [RESPONSE A]
    {response A}

    [RESPONSE B]
    {response B}

    [QUESTION]
    Which response is better, A or B? Answer with one letter.

Every pair is written in both orders (chosen as A answering "A", then chosen as B answering "B"), so the
model cannot learn a position. A tie (RRM augmentation) is written with both answers for each order,
which trains P(A) = P(B) = 1/2. Loss is on the answer token only.

Truncation never touches the answer slot or the template: when a pair does not fit `max_length`, the
context is cut from the front (keeping the turns nearest the responses, at least a quarter of the room),
then the responses are cut at their end, the longer one first, each cut marked with "…". What was cut
is counted.

    python pair_pm/prepare_data.py --dataset_name ../shared/data/hh_rlhf --split_rule hh_sha1 \
        --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct --max_length 1024 --output_dir data/pair_pm
writes train.jsonl / test.jsonl (readable: the messages before truncation + the answer; an example whose two
responses are the same text once cut is left out and counted, as train.py leaves it out) and report.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from judges.base import pair_texts, prompt_text
from rm_core.errors import UserInputError, check_local_path, check_output_dir

ANSWERS = ("A", "B")
QUESTION = "Which response is better, A or B? Answer with one letter."
TEMPLATE_NAME = "pair-pm-v1"  # recorded in config.json; bump when the text above changes
ELLIPSIS = "…"


# The reasoning pair-PM (pair_pm/train_grpo.py): the same pair, a question asking for principles, a critique
# and a verdict in a fixed form that pair_pm/grpo_rewards.parse_reasoning_verdict reads strictly.
REASONING_QUESTION = (
    "Which response is better, A or B? First write brief principles for judging this conversation inside "
    "<principles></principles>, then a short critique of both responses inside <critique></critique>, and end "
    "with your final verdict, exactly <verdict>A</verdict> or <verdict>B</verdict>.")
REASONING_TEMPLATE_NAME = "pair-pm-reasoning-v1"  # recorded in config.json; bump when REASONING_QUESTION changes


def user_message(context: str, response_a: str, response_b: str, question: str = QUESTION) -> str:
    return (f"[CONTEXT]\n{context}\n\n[RESPONSE A]\n{response_a}\n\n[RESPONSE B]\n{response_b}\n\n"
            f"[QUESTION]\n{question}")


def pair_messages(context: str, response_a: str, response_b: str, question: str = QUESTION) -> list[dict]:
    return [{"role": "user", "content": user_message(context, response_a, response_b, question)}]


def _encode(tokenizer, context: str, a: str, b: str, question: str = QUESTION) -> list[int]:
    from rm_core.templates import tokenize_messages

    return tokenize_messages(tokenizer, pair_messages(context, a, b, question), add_generation_prompt=True)


def answer_token_ids(tokenizer) -> dict[str, int]:
    """The token id of each answer letter as the model would write it right after the generation prompt."""
    base = _encode(tokenizer, "x", "y", "z")
    text = tokenizer.decode(base, skip_special_tokens=False)
    ids = {}
    for letter in ANSWERS:
        full = tokenizer(text + letter, add_special_tokens=False)["input_ids"]
        plain = tokenizer(text, add_special_tokens=False)["input_ids"]
        extra = full[len(plain):]
        if full[: len(plain)] != plain or len(extra) != 1:
            raise ValueError(f"the answer {letter!r} is not one token after this tokenizer's generation prompt "
                             f"(got {extra}); pair-PM needs single-token answers")
        ids[letter] = extra[0]
    if ids["A"] == ids["B"]:
        raise ValueError("answers A and B map to the same token")
    return ids


def _cut(tokenizer, text: str, keep: int, keep_end: bool) -> str:
    """`text` shortened to about `keep` tokens, at token boundaries, marked with an ellipsis."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= keep:
        return text
    if keep <= 0:
        return ELLIPSIS
    if keep_end:
        return ELLIPSIS + text[offsets[len(offsets) - keep][0]:]
    return text[: offsets[keep - 1][1]] + ELLIPSIS


def check_template_room(tokenizer, max_length: int, question: str = QUESTION, reserve: int = 1) -> int:
    """The template's length in tokens; a UserInputError when `max_length` leaves no room next to it to fit a
    pair (fit_pair's rule). The tokenizer alone measures it: a recipe checks before loading weights or data."""
    overhead = len(_encode(tokenizer, "", "", "", question))
    if max_length - reserve - overhead - 6 < 12:  # fit_pair: room for the ellipses, and at least 12 tokens of text
        raise UserInputError(f"max_length {max_length} leaves no room for the pair-PM template ({overhead} tokens)")
    return overhead


@dataclass
class TruncationReport:
    sequences: int = 0
    truncated: int = 0
    context_cut: int = 0
    response_cut: int = 0
    identical_after_cut: int = 0  # examples whose two responses were the same once cut: dropped (nothing to judge)

    def __str__(self) -> str:
        text = (f"{self.truncated} of {self.sequences} sequences truncated "
                f"(context cut {self.context_cut}, responses cut {self.response_cut})")
        if self.identical_after_cut:
            text += f"; {self.identical_after_cut} dropped: the two responses the same once cut"
        return text


def same_once_cut(cut: tuple[str, str, str]) -> bool:
    """Whether fit_pair's cut left the two responses the same text (they differed only past the kept part)."""
    return cut[1].strip() == cut[2].strip()


def encode_pair(tokenizer, context: str, a: str, b: str, max_length: int,
                report: TruncationReport | None = None, question: str = QUESTION, reserve: int = 1) -> list[int]:
    """Prompt ids (ending with the generation prompt) of one order of a pair, fitted into max_length - 1
    tokens so the answer token always fits; see the module docstring for the truncation rule. `question`
    and `reserve` (tokens kept free for the answer) are for the reasoning pair-PM; see `fit_pair`."""
    return fit_pair(tokenizer, context, a, b, max_length, report, question, reserve)[0]


def fit_pair(tokenizer, context: str, a: str, b: str, max_length: int, report: TruncationReport | None = None,
             question: str = QUESTION, reserve: int = 1) -> tuple[list[int], tuple[str, str, str]]:
    """(prompt ids, (context, a, b) as cut) of one order of a pair, fitted into max_length - reserve tokens by
    the rule of the module docstring; the texts are returned so a caller can render the same cut prompt as
    messages (GRPO datasets are conversational)."""
    report = report if report is not None else TruncationReport()
    report.sequences += 1
    ids = _encode(tokenizer, context, a, b, question)
    limit = max_length - reserve  # the answer
    if len(ids) <= limit:
        return ids, (context, a, b)
    overhead = check_template_room(tokenizer, max_length, question, reserve)
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (context, a, b)]
    budget = limit - overhead - 6  # room for the ellipses and tokens merging differently after a cut
    for _ in range(5):
        n_c, n_a, n_b = lengths
        keep_c = min(n_c, max(budget // 4, budget - n_a - n_b))
        room = budget - keep_c
        short, long_ = sorted((n_a, n_b))
        keep_short = min(short, room // 2)
        keep_long = min(long_, room - keep_short)
        keep_a, keep_b = (keep_short, keep_long) if n_a <= n_b else (keep_long, keep_short)
        cut = (_cut(tokenizer, context, keep_c, keep_end=True), _cut(tokenizer, a, keep_a, keep_end=False),
               _cut(tokenizer, b, keep_b, keep_end=False))
        ids = _encode(tokenizer, *cut, question)
        if len(ids) <= limit:
            report.truncated += 1
            report.context_cut += cut[0] != context
            report.response_cut += (cut[1] != a) + (cut[2] != b)
            return ids, cut
        budget -= len(ids) - limit  # re-tokenisation after a cut came out longer: shrink and retry
    raise ValueError(f"could not fit a pair into max_length {max_length}")


def pair_examples(pref: dict, both_orders: bool = True) -> list[tuple[str, str, str, str]]:
    """(context, response A, response B, answer) rows of one Preference row; a tie gets both answers."""
    context = prompt_text(pref["prompt"])
    chosen, rejected = pair_texts(pref)
    orders = [(chosen, rejected, "A"), (rejected, chosen, "B")][: 2 if both_orders else 1]
    rows = []
    for a, b, answer in orders:
        answers = ANSWERS if pref.get("tie") else (answer,)
        rows += [(context, a, b, ans) for ans in answers]
    return rows


def build_dataset(prefs: list[dict], tokenizer, max_length: int, both_orders: bool = True):
    """A tokenised datasets.Dataset for TRL's SFTTrainer: input_ids = prompt + answer token, completion_mask
    marking the answer token only (loss there and nowhere else); and the TruncationReport."""
    from datasets import Dataset

    answer_ids = answer_token_ids(tokenizer)
    report = TruncationReport()
    input_ids, masks = [], []
    for pref in prefs:
        for context, a, b, answer in pair_examples(pref, both_orders):
            ids, cut = fit_pair(tokenizer, context, a, b, max_length, report)
            if same_once_cut(cut):  # trained to answer A (or B) for two identical texts: dropped, counted
                report.identical_after_cut += 1
                continue
            input_ids.append(ids + [answer_ids[answer]])
            masks.append([0] * len(ids) + [1])
    return Dataset.from_dict({"input_ids": input_ids, "completion_mask": masks}), report


def main(argv: list[str] | None = None) -> None:
    import argparse

    from transformers import AutoTokenizer

    from rm_core.args import DataArguments
    from rm_core.hub import atomic_write_json, atomic_write_jsonl
    from rm_core.models import resolve_model
    from rm_core.pipeline import held_out_line, load_preference_splits
    from rm_core.templates import set_chat_template

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset_name", default="builtin")
    p.add_argument("--dataset_format", default="auto")
    p.add_argument("--split_rule", default=None)
    p.add_argument("--dataset_test_split", default="test")
    p.add_argument("--eval_fraction", type=float, default=0.1,
                   help="held out by content hash when the data has no test split (rm_core.args.DataArguments)")
    p.add_argument("--max_train_pairs", type=int, default=None)
    p.add_argument("--model_name_or_path", default="HuggingFaceTB/SmolLM2-135M-Instruct", help="its tokenizer")
    p.add_argument("--chat_template", default=None)
    p.add_argument("--max_length", type=int, default=1024)
    p.add_argument("--rrm", action="store_true", help="add RRM causal augmentation to the train split")
    p.add_argument("--rrm_seed", type=int, default=0)
    p.add_argument("--output_dir", required=True)
    args = p.parse_args(argv)
    check_local_path(args.model_name_or_path, "--model_name_or_path")
    check_output_dir(args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model_name_or_path))
    set_chat_template(tokenizer, args.chat_template)
    check_template_room(tokenizer, args.max_length)  # before the data is read
    data_args = DataArguments(dataset_name=args.dataset_name, dataset_format=args.dataset_format,
                              split_rule=args.split_rule, dataset_test_split=args.dataset_test_split or None,
                              eval_fraction=args.eval_fraction, max_train_pairs=args.max_train_pairs)
    train, test, report = load_preference_splits(data_args)
    print(f"[data] {args.dataset_name}: {len(train)} train / {len(test)} held-out pairs; skipped "
          f"{report['train_skipped']['skipped']} train / {report['test_skipped']['skipped']} held-out rows", flush=True)
    print(held_out_line(report), flush=True)
    if args.rrm:
        from pair_pm.rrm_augment import rrm_augment

        extra, report["rrm"] = rrm_augment(train, seed=args.rrm_seed)
        train = train + extra
    out = Path(args.output_dir)
    for name, prefs in (("train", train), ("test", test)):
        trunc = TruncationReport()
        rows = []
        for pref in prefs:
            for context, a, b, answer in pair_examples(pref):
                if same_once_cut(fit_pair(tokenizer, context, a, b, args.max_length, trunc)[1]):
                    trunc.identical_after_cut += 1  # dropped, as train.py drops it (build_dataset)
                    continue
                rows.append({"id": pref["id"], "messages": pair_messages(context, a, b), "answer": answer})
        atomic_write_jsonl(out / f"{name}.jsonl", rows)
        report[f"{name}_truncation"] = asdict(trunc)
        print(f"[{name}] {len(prefs)} pairs -> {len(rows)} examples; {trunc}")
    report.update(template=TEMPLATE_NAME, max_length=args.max_length, answer_token_ids=answer_token_ids(tokenizer))
    atomic_write_json(out / "report.json", report)


def cli() -> None:
    """Run as `python pair_pm/prepare_data.py`, `python -m pair_pm.prepare_data`
    or the `rm-prepare-pair-pm` console script. A user error prints one line (rm_core.errors.run_cli);
    main's return value is for Python callers, not an exit status."""
    from rm_core.errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
