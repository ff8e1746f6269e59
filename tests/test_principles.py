"""judges/principles.py: every scenario's set renders into every LLM judge mode's prompt; scenario:auto gives each
item its own scenario's set; the library is versioned by content."""

from __future__ import annotations

import pytest

from judges.backends import Result
from judges.llm_judge import llm_judge
from judges.principles import (
    DEFAULT_SCENARIO,
    SCENARIOS,
    by_scenario,
    library_fingerprint,
    resolve_principles,
    scenario_of,
    scenario_principles,
)

REQUIRED = {"chat", "brainstorming", "closed_qa", "open_qa", "code", "math", "reasoning", "summarization", "rewrite",
            "translation", "role_play", "safety", "honesty"}


class Recorder:
    """A backend that answers every mode's grammar and records the prompts."""

    name = "recorder"
    supports_choice_probs = False

    def __init__(self):
        self.prompts: list[str] = []

    def generate(self, requests, max_new_tokens=256, temperature=0.0, seed=None):
        out = []
        for r in requests:
            text = r[-1]["content"]
            self.prompts.append(text)
            out.append(Result("Rating: 7" if "Rating: N" in text else "[1] > [2]" if "[1]" in text else "A"))
        return out


def test_the_library_covers_the_scenarios_the_issue_names():
    assert set(SCENARIOS) >= REQUIRED
    assert all(len(ps) >= 4 and all(p.strip() for p in ps) for ps in SCENARIOS.values())


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("mode", ["pointwise", "pairwise", "listwise"])
def test_every_set_renders_into_every_mode(scenario, mode):
    backend = Recorder()
    judge = llm_judge(backend, mode, principles=f"scenario:{scenario}")
    if mode == "pointwise":
        judge.score([[{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]])
    elif mode == "pairwise":
        judge.compare("Q?", "one", "two")
    else:
        judge.rank("Q?", ["one", "two"])
    assert backend.prompts
    for prompt in backend.prompts:
        assert "Judge by these principles:" in prompt
        for principle in SCENARIOS[scenario]:
            assert f"- {principle}" in prompt


def test_scenario_of_maps_benchmark_categories():
    assert scenario_of("Helpfulness/Open QA/Factual") == "open_qa"
    assert scenario_of("Helpfulness/Role Playing/General Character") == "role_play"
    assert scenario_of("Harmlessness/S1") == "safety"
    assert scenario_of("Helpfulness/Code/Documentation") == "code"
    assert scenario_of("something else") == DEFAULT_SCENARIO and scenario_of(None) == DEFAULT_SCENARIO
    with pytest.raises(ValueError, match="unknown scenario 'poetry'"):
        scenario_principles("poetry")


def test_resolve_principles():
    assert resolve_principles(None) == ([], False)
    assert resolve_principles(["a", "b"]) == (["a", "b"], False)
    assert resolve_principles("scenario:math") == (list(SCENARIOS["math"]), False)
    assert resolve_principles("scenario:auto") == ([], True)
    with pytest.raises(ValueError, match="non-empty"):
        resolve_principles(["ok", " "])


def test_auto_judges_each_item_with_its_own_scenario():
    backend = Recorder()
    judge = llm_judge(backend, "pairwise", principles="scenario:auto")
    items = [{"s": "Helpfulness/Code/Development and Implementation", "x": 0}, {"s": "Harmlessness/S3", "x": 1},
             {"s": "Helpfulness/Code/Documentation", "x": 2}]
    seen = []

    def score(j, group):
        seen.append((tuple(j.principles), [it["x"] for it in group]))
        return [it["x"] * 10 for it in group]

    assert by_scenario(judge, items, lambda it: it["s"], score) == [0, 10, 20]  # back in the items' order
    assert seen == [(SCENARIOS["code"], [0, 2]), (SCENARIOS["safety"], [1])]
    fixed = llm_judge(backend, "pairwise", principles="scenario:chat")
    assert by_scenario(fixed, items, lambda it: it["s"], lambda j, g: [j.principles] * len(g))[0] == list(
        SCENARIOS["chat"])  # not per item: one call with its own set


def test_rmb_scorer_gives_an_llm_judge_each_scenarios_principles():
    from eval.rmb import make_scorer

    backend = Recorder()
    judge = llm_judge(backend, "pairwise", principles="scenario:auto")
    items = [{"id": "a", "set": "pairwise", "goal": "harmlessness", "scenario": "Harmlessness/S1",
              "prompt": [{"role": "user", "content": "q"}], "best": "no", "others": ["yes"]}]
    rows = make_scorer(judge)(items)
    assert rows[0]["pairwise"] and all(SCENARIOS["safety"][0] in p for p in backend.prompts)


def test_library_fingerprint_follows_the_content(monkeypatch):
    before = library_fingerprint()
    monkeypatch.setitem(SCENARIOS, "chat", SCENARIOS["chat"] + ("A new principle.",))
    after = library_fingerprint()
    assert before["version"] == after["version"] and before["sha256"] != after["sha256"]
    monkeypatch.undo()
    # scenario:auto's mapping of a category is part of what was shown: remapping one changes the digest too
    import judges.principles as principles

    monkeypatch.setitem(principles.SCENARIO_ALIASES, "classification", "reasoning")
    assert library_fingerprint()["sha256"] != before["sha256"]
    monkeypatch.undo()
    monkeypatch.setattr(principles, "DEFAULT_SCENARIO", "safety")
    assert library_fingerprint()["sha256"] != before["sha256"]


def test_a_principle_that_is_not_text_is_refused_not_turned_into_its_repr():
    from judges.principles import resolve_principles

    assert resolve_principles(["Be right.", "Be brief."]) == (["Be right.", "Be brief."], False)
    for bad in ([None, 5], ["ok", ""], ["ok", 3.0]):
        with pytest.raises(ValueError, match="every principle must be a non-empty string"):
            resolve_principles(bad)
