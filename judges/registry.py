"""rm_family (a checkpoint's config.json) -> the judge class that serves it, found by name and imported lazily.

    FAMILIES                  this repository's families, as "module:Class" strings (read them to find the code)
    entry-point group         "reward_models.judges": a package outside this repository registers its family in
                              its own pyproject.toml, with no change here:

                                  [project.entry-points."reward_models.judges"]
                                  my_family = "my_package.judge:MyJudge"

    judges.register_judge     a class registered at run time (tests, notebooks)

`judge_class(family)` looks in that order of precedence: run-time registrations, then FAMILIES, then the entry
points (an installed package cannot replace a family of this repository; register_judge can). It imports only
the module of the family asked for, so `import judges` imports no family, loading a Bradley-Terry judge imports
no other family, and a broken family breaks only its own checkpoints. The class only needs
`from_pretrained(name_or_path, **kwargs)` returning a `judges.base.Judge`.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from judges.base import JUDGE_FAMILIES
from rm_core.errors import UserInputError

ENTRY_POINT_GROUP = "reward_models.judges"

FAMILIES: dict[str, str] = {
    "bradley_terry": "bradley_terry_rm.judge:BradleyTerryJudge",
    "pair_pm": "pair_pm.judge:PairPMJudge",
    "armo": "armo_rm.judge:ArmoJudge",
    "odin": "odin_rm.judge:OdinJudge",
    "decision_tree": "decision_tree.judge:DecisionTreeJudge",
    "orm": "math_rm.judge:OutcomeRewardJudge",
    "prm": "math_rm.judge:ProcessRewardJudge",
}


def entry_point_families() -> dict[str, str]:
    """{rm_family: "module:Class"} declared by installed packages in the entry-point group."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_families() -> list[str]:
    """Every rm_family a judge can be built for: run-time registrations, this repository's, installed packages'."""
    return sorted(set(JUDGE_FAMILIES) | set(FAMILIES) | set(entry_point_families()))


def family_target(family: str) -> str | None:
    """The "module:Class" that serves `family` (FAMILIES, else an entry point); None when nothing does."""
    return FAMILIES.get(family) or entry_point_families().get(family)


def resolve(target: str, family: str = "") -> type:
    """Import "module:Class" (only that module) and return the class."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"rm_family {family!r}: {target!r} is not 'module:Class'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"rm_family {family!r}: module {module_name} has no {attr!r} ({target})") from None
    return obj


def judge_class(family: str) -> type:
    """The judge class for `family`; ValueError naming the known families when none serves it."""
    if family in JUDGE_FAMILIES:
        return JUDGE_FAMILIES[family]
    target = family_target(family)
    if target is None:
        raise UserInputError(f"no judge registered for rm_family {family!r}; known: {known_families()}")
    return resolve(target, family)
