"""Rendering conversations to token ids: exactly one BOS, a pad-token policy, end-keeping truncation.

Every recipe and the evaluator tokenise through `render_ids`, so a checkpoint is trained and scored on
the same token sequence.
"""

from __future__ import annotations

from pathlib import Path

from rm_core.errors import UserInputError

# Used only when a tokenizer has no chat template and the user asks for the plain fallback explicitly
# (encoders such as MiniLM/BERT ship none). Turns are separated by role markers the tokenizer knows as text.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% endfor %}"
)

PAD_TOKEN_ADDED = "<|reward_pad|>"


class TemplateError(UserInputError):
    """The tokenizer cannot render conversations (no chat template, a template that is not valid Jinja) or a
    conversation is unusable. A user error: a command prints it as one line."""


def check_template_syntax(template, what: str) -> None:
    """Compile `template` (a Jinja string, or a tokenizer's {name: template} dict) as transformers will: a syntax
    error is a TemplateError naming `what` and the line, now, not at the first render of a long job."""
    from jinja2 import TemplateSyntaxError

    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:  # another transformers layout: its first render reports a broken template
        return
    for text in template.values() if isinstance(template, dict) else [template]:
        try:
            _compile_jinja_template(text)
        except TemplateSyntaxError as err:
            raise TemplateError(f"{what}: not a valid Jinja template (line {err.lineno}: {err.message})") from None


def read_chat_template(chat_template: str) -> str:
    """The template text a --chat_template value stands for ("plain": PLAIN_CHAT_TEMPLATE; a .jinja or .j2 path:
    the file's text; else the Jinja string itself), checked to compile. A missing or broken file is a
    TemplateError naming it."""
    if chat_template == "plain":
        return PLAIN_CHAT_TEMPLATE
    if not chat_template.endswith((".jinja", ".j2")):
        check_template_syntax(chat_template, "--chat_template")
        return chat_template
    if not Path(chat_template).is_file():  # else the path itself would become the template text
        raise TemplateError(f"chat template file {chat_template!r} does not exist")
    try:
        text = Path(chat_template).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TemplateError(f"chat template file {chat_template}: not UTF-8 text (byte {err.start})") from None
    check_template_syntax(text, f"chat template file {chat_template}")
    return text


def set_chat_template(tokenizer, chat_template: str | None) -> None:
    """Apply `chat_template`: a Jinja string, a path to a .jinja file, or "plain" for PLAIN_CHAT_TEMPLATE.

    With None the tokenizer's own template is kept; a tokenizer without one, or a template that does not
    compile, is an error here, not at the first batch, so a long job never starts with a template it cannot use.
    """
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    if chat_template:
        tokenizer.chat_template = read_chat_template(chat_template)
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"tokenizer {name!r} has no chat template: pass --chat_template PATH.jinja "
            "(or --chat_template plain for a simple 'Role: text' rendering)"
        )
    if not chat_template:
        check_template_syntax(tokenizer.chat_template, f"the chat template of tokenizer {name!r}")


def padding_id(tokenizer) -> int:
    """A token id to pad with where the padding is never read (right padding: a causal model never attends to it,
    and the states are read before it): the tokenizer's pad, else EOS, else 0. Never a token added to the tokenizer
    (ensure_pad_token would add one past a frozen backbone's embeddings when there is neither pad nor unk)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            return candidate
    return 0


def ensure_pad_token(tokenizer, model=None) -> int:
    """Pick a pad token that never ends a real sequence, and tell the model about it.

    Sequence-classification heads read the reward at the rightmost token that is not the pad token, so a
    pad equal to EOS (common: SmolLM2, Llama 3) would move the read-out off a conversation that ends in EOS.
    Order of preference: the tokenizer's own pad if it differs from EOS, then UNK, then a new added token
    (the model's embeddings are resized).
    """
    pad, eos, unk = tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token
    if pad is None or pad == eos:
        if unk is not None and unk != eos:
            tokenizer.pad_token = unk
        else:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN_ADDED})
    # a pad added now, or when the tokenizer was saved (a LoRA run's, whose base is reloaded to merge the adapter
    # trained with the resized embeddings): the model must embed every token id
    if model is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        text_config = model.config.get_text_config()
        text_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer.pad_token_id


def collapse_double_bos(tokenizer, ids: list[int]) -> list[int]:
    bos = tokenizer.bos_token_id
    while bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


def tokenize_messages(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a whole conversation with exactly one BOS.

    Templates that write BOS themselves (Llama 3) and tokenizers that add it again would otherwise give
    two; templates that omit it while the model expects one (Gemma without template BOS) get it from the
    tokenizer's special tokens. Encoders get their [CLS] ... [SEP] the same way. add_generation_prompt:
    end with the template's assistant header, where a generative judge writes its answer.
    """
    if not messages:
        raise TemplateError("empty conversation")
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    return collapse_double_bos(tokenizer, list(ids))


def truncate_keep_end(ids: list[int], max_length: int | None, leading_special_ids: set[int]) -> tuple[list[int], bool]:
    """Cut from the front so the end of the response (where the reward is read) survives.

    A leading special token (BOS, [CLS]) stays in place: encoders pool at [CLS] and decoders expect BOS.
    Returns (ids, was_truncated).
    """
    if max_length is None or len(ids) <= max_length:
        return ids, False
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    if ids and ids[0] in leading_special_ids:
        return [ids[0]] + ids[len(ids) - (max_length - 1):], True
    return ids[len(ids) - max_length:], True


def leading_specials(tokenizer) -> set[int]:
    return {i for i in (tokenizer.bos_token_id, tokenizer.cls_token_id) if i is not None}


def render_ids(tokenizer, messages: list[dict], max_length: int | None = None) -> tuple[list[int], bool]:
    """`tokenize_messages` then `truncate_keep_end`; returns (ids, was_truncated)."""
    return truncate_keep_end(tokenize_messages(tokenizer, messages), max_length, leading_specials(tokenizer))
