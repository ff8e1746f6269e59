"""rm-annotate through a real, running Label Studio (scripts/label_studio_tests.sh starts none: this test starts the
server from $RM_LABEL_STUDIO, a fresh data folder and a free port, and stops it).

The round trip a user makes: `rm-annotate export` -> a project created with label_config.xml (Label Studio
validates the config against the tasks' data) -> tasks.json imported -> annotations posted as a person's clicks
are stored -> Label Studio's own JSON export -> `rm-annotate import`. The Label Studio side goes through
label-studio-sdk (tests/label_studio_client.py, run in Label Studio's venv). What comes back must be the people's choices
with the A/B order undone, their ids and reasons, and ties, skips and unlabelled tasks counted, never written as
preferences."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from judges.annotate import CHOICE_A, CHOICE_B, CHOICE_TIE
from judges.annotate import main as annotate_main
from rm_core.testing import free_port

pytestmark = pytest.mark.labelstudio
LABEL_STUDIO = os.environ.get("RM_LABEL_STUDIO")  # set by scripts/label_studio_tests.sh


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, API token) of a Label Studio started on a fresh data folder; stopped after the module."""
    import httpx

    if not LABEL_STUDIO:
        pytest.skip("no Label Studio: run `bash scripts/label_studio_tests.sh` (it builds .venv-labelstudio)")
    data = tmp_path_factory.mktemp("label-studio")
    port, token = free_port(), secrets.token_hex(16)  # a throwaway token for a server that lives for this test
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    log_path = data / "server.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([LABEL_STUDIO, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port",
                                 str(port), "--data-dir", str(data), "--username", "annotator@example.com",
                                 "--password", secrets.token_hex(12), "--user-token", token,
                                 "--enable-legacy-api-token"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # the first start migrates a fresh sqlite database (minutes on 2 cores)
        while True:
            if proc.poll() is not None:
                pytest.fail(f"label-studio exited {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio did not answer on {base} in 600 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_label_studio_round_trip(server, tmp_path):
    base, token = server
    rows = [{"id": f"p{i}", "prompt": f"Question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
            for i in range(6)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ls_dir = tmp_path / "ls"
    annotate_main(["export", "--pairs", str(tmp_path / "prefs.jsonl"), "--output_dir", str(ls_dir)])
    shown_as_a = {t["data"]["pair_id"]: t["data"]["a_source"]
                  for t in json.loads((ls_dir / "tasks.json").read_text(encoding="utf-8"))}

    def click(pair_id: str, side: str | None, reason: str | None = None) -> dict:
        """What a person's click stores: `side` is the data set's "chosen"/"rejected", "tie", or None (skipped)."""
        choice = (None if side is None else CHOICE_TIE if side == "tie"
                  else CHOICE_A if shown_as_a[pair_id] == side else CHOICE_B)
        return {"choice": choice, "reason": reason, "cancelled": side is None}

    plan = {"p0": click("p0", "chosen", reason="more complete"), "p1": click("p1", "chosen"),
            "p2": click("p2", "rejected", reason="the other one is rude"),  # a person disagreeing with the data
            "p3": click("p3", "tie"), "p4": click("p4", None)}  # p4 skipped in the UI; p5: nobody labels it
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    export_file = tmp_path / "project-export.json"
    client = subprocess.run(
        [str(Path(LABEL_STUDIO).parent / "python"), str(Path(__file__).parent / "label_studio_client.py"),
         "--base_url", base, "--label_config", str(ls_dir / "label_config.xml"), "--tasks", str(ls_dir / "tasks.json"),
         "--plan", str(tmp_path / "plan.json"), "--export", str(export_file)],
        env={**os.environ, "LABEL_STUDIO_API_KEY": token}, capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stdout[-2000:] + client.stderr[-4000:]

    summary = annotate_main(["import", "--export", str(export_file), "--output_dir", str(tmp_path / "human")])
    prefs = [json.loads(line) for line in (tmp_path / "human" / "preferences.jsonl").read_text().splitlines()]
    ties = (tmp_path / "human" / "ties.jsonl").read_text().splitlines()
    assert summary["tasks"] == 6 and len(prefs) == 3 and len(ties) == 1
    assert summary["counts"] == {"preference": 3, "agrees with the data set": 2, "disagrees with the data set": 1,
                                 "tie": 1, "skipped or cancelled": 1, "task not labelled": 1}
    by_id = {p["pair_id"]: p for p in prefs}
    for pair_id in ("p0", "p1"):  # the order shown is undone: the preferred response is the good one
        assert by_id[pair_id]["chosen"][0]["content"].startswith("good answer")
        assert by_id[pair_id]["chosen_source"] == "chosen"
    assert by_id["p2"]["chosen"][0]["content"] == "bad answer 2" and by_id["p2"]["chosen_source"] == "rejected"
    assert by_id["p0"]["reason"] == "more complete" and by_id["p1"]["reason"] is None
    assert by_id["p2"]["prompt"] == [{"role": "user", "content": "Question 2?"}]
    annotators = {p["annotator"] for p in prefs}
    assert len(annotators) == 1 and isinstance(annotators.pop(), int)  # Label Studio's user id, as exported
    assert all(isinstance(p["task_id"], int) for p in prefs)
    assert not list(Path(tmp_path / "human").glob("*.tmp*"))
