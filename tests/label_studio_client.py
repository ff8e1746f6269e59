"""The Label Studio side of tests/test_label_studio.py, run by that test in Label Studio's own venv with
label-studio-sdk 2.x (not a test module; nothing of this project is importable there):

    python tests/label_studio_client.py --base_url URL --label_config label_config.xml --tasks tasks.json \
        --plan plan.json --export export.json          # the API token comes in $LABEL_STUDIO_API_KEY

creates a project from rm-annotate's labelling config, imports its tasks, posts each task's annotation as
plan.json says ({pair_id: {"choice": text or null, "reason": text or null, "cancelled": bool}}; a pair not in
the plan stays unlabelled) and writes the project's JSON export, as Export -> JSON in the UI gives it."""

from __future__ import annotations

import argparse
import json
import os
import time

from label_studio_sdk import LabelStudio


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--base_url", "--label_config", "--tasks", "--plan", "--export"):
        p.add_argument(name, required=True)
    args = p.parse_args()
    ls = LabelStudio(base_url=args.base_url, api_key=os.environ["LABEL_STUDIO_API_KEY"])
    with open(args.label_config, encoding="utf-8") as f:
        project = ls.projects.create(title="rm-annotate round trip", label_config=f.read())
    with open(args.tasks, encoding="utf-8") as f:
        tasks = json.load(f)
    ls.projects.import_tasks(id=project.id, request=tasks)
    deadline = time.monotonic() + 120  # an import may finish after the request returns
    while len(listed := list(ls.tasks.list(project=project.id))) < len(tasks):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(listed)} of {len(tasks)} tasks imported after 120 s")
        time.sleep(1)
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    for task in listed:
        click = plan.get(task.data["pair_id"])
        if click is None:
            continue
        result = []
        if click["choice"]:
            result.append({"from_name": "preference", "to_name": "prompt", "type": "choices",
                           "value": {"choices": [click["choice"]]}})
        if click["reason"]:
            result.append({"from_name": "reason", "to_name": "prompt", "type": "textarea",
                           "value": {"text": [click["reason"]]}})
        ls.annotations.create(id=task.id, result=result, was_cancelled=click["cancelled"])
    # Export -> JSON as the UI does it (every task, labelled or not); download_sync is the community edition's path
    exported = json.loads(b"".join(ls.projects.exports.download_sync(project.id, export_type="JSON",
                                                                      download_all_tasks=True)))
    with open(args.export, "w", encoding="utf-8") as f:
        json.dump(exported, f)
    print(f"project {project.id}: {len(listed)} tasks, {len(plan)} annotated, exported {len(exported)} tasks")


if __name__ == "__main__":
    main()
