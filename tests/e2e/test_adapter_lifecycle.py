"""The adapter lifecycle on the real small model: train a LoRA adapter with `spillway adapters
train` (a few hundred examples, bounded steps), gate it with `spillway adapters eval`, add it
to a running service through the admin API under load, query it by name, by version and through
the router, promote a second version, roll back, remove; every step checked through the
official `openai` client and the ledger, and the router's and the large model's replicas keep
their process ids. The large model is the tiny stand-in (this test is about the small one).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    LOCAL_CONFIG,
    REPO,
    TINY_CONFIG,
    RunningService,
    local_config_data,
    start_service,
    stop_service,
)
from tests.e2e.faultload import replica_pid

pytestmark = pytest.mark.slow

SPILLWAY = str(Path(sys.executable).parent / "spillway")
DATA = REPO / "orchestrator" / "localmodels" / "datasets" / "adapter_qa" / "legal.jsonl"
TRAIN_EXAMPLES, HELDOUT_EXAMPLES = 240, 30
OTHER_KEY = "sk-acme"
LEGAL_QUESTION = "Can my landlord keep my security deposit?"
RESTART_TIMEOUT_S = 300


def _spillway(*args: str, timeout: float = 900) -> dict[str, Any]:
    done = subprocess.run(
        [SPILLWAY, "adapters", *args, "--json"], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclass
class Trained:
    v2: Path
    v3: Path
    heldout: Path
    card: dict[str, Any]
    seconds: float


@pytest.fixture(scope="module")
def trained(real_models_built: None, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Two adapters for `legal` from the shipped Q&A: 240 examples (a tenth for validation),
    bounded steps; the second with another seed and fewer steps."""
    tmp = tmp_path_factory.mktemp("adapters")
    lines = DATA.read_text(encoding="utf-8").splitlines()
    (tmp / "train.jsonl").write_text("\n".join(lines[:TRAIN_EXAMPLES]) + "\n", encoding="utf-8")
    heldout = tmp / "heldout.jsonl"
    heldout.write_text("\n".join(lines[-HELDOUT_EXAMPLES:]) + "\n", encoding="utf-8")
    base = str(REPO / ".spillway" / "models" / "small")
    common = ["--data", str(tmp / "train.jsonl"), "--base-model", base, "--quiet"]
    started = time.perf_counter()
    card = _spillway("train", *common, "--out", str(tmp / "v2"), "--max-steps", "24")
    seconds = time.perf_counter() - started
    _spillway("train", *common, "--out", str(tmp / "v3"), "--max-steps", "8", "--seed", "1")
    return Trained(tmp / "v2", tmp / "v3", heldout, card, seconds)


def lifecycle_overrides(tmp: Path) -> dict[str, Any]:
    """local.yaml's real small model and router; the tiny large model; a private state dir
    (the adapter registry) that shares the compile caches."""
    real, tiny = local_config_data(LOCAL_CONFIG), local_config_data(TINY_CONFIG)
    state = tmp / "state"
    state.mkdir()
    (state / "cache").symlink_to(REPO / ".spillway" / "cache")
    tenants = real["tenants"] + [{"name": "acme", "api_keys": [OTHER_KEY]}]
    return {
        "server": real["server"] | {"state_dir": str(state)},
        "tenants": tenants,
        "large": tiny["large"],
        "small": real["small"],
    }


@dataclass
class Rig:
    service: RunningService
    proc: subprocess.Popen[bytes]
    pids: dict[str, int] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rig(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    service, proc = start_service(tmp, lifecycle_overrides(tmp), LOCAL_CONFIG)
    try:
        # The router runs in the ingress replica (router.placement's default), so the Ingress
        # pid is the router's too.
        pids = {name: replica_pid(proc.pid, name) for name in ("LargeLLM", "Ingress")}
    except BaseException:
        stop_service(proc)  # a failed set-up leaves no service behind
        raise
    yield Rig(service, proc, pids)
    code = stop_service(proc)
    assert code == 0, f"exit {code} on SIGTERM:\n{service.log_path.read_text()[-3000:]}"


def _ask(service: RunningService, model: str, question: str = LEGAL_QUESTION, **kw: Any) -> Any:
    return service.client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=kw.pop("max_tokens", 12),
        temperature=0,
        **kw,
    )


def _ledger_version(service: RunningService, query_id: str) -> str | None:
    """The ledger row's adapter_version (waiting up to 10 s for the writer)."""
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(service.ledger_path) as db:
            row = db.execute(
                "SELECT adapter_version FROM ledger WHERE query_id = ?", (query_id,)
            ).fetchone()
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row is not None, query_id
    return row[0]  # type: ignore[no-any-return]


def _answered_by_version(service: RunningService, model: str, expected: str) -> Any:
    reply = _ask(service, model)
    info = reply.model_extra["spillway"]
    assert info["adapter_version"] == expected, info
    assert _ledger_version(service, info["query_id"]) == expected
    return reply


def _admin(service: RunningService, *args: str) -> dict[str, Any]:
    return _spillway(*args, "--url", service.base_url, "--api-key", service.api_key)


def test_trained_adapter_has_a_card_and_passes_the_gate(trained: Trained) -> None:
    card = trained.card
    assert card["data_files"]["train.jsonl"] and len(card["base_model_sha256"]) == 64
    assert card["hyperparameters"]["rank"] == 8 and card["steps"] <= 24
    assert card["examples"]["val"] == round(TRAIN_EXAMPLES * 0.1)
    assert card["heldout"]["adapter_loss"] < card["heldout"]["base_loss"]
    assert card["gate"]["passed"], card["gate"]
    result = _spillway("eval", "--adapter", str(trained.v2), "--data", str(trained.heldout))
    assert result["examples"] == HELDOUT_EXAMPLES
    assert result["adapter"]["loss"] < result["base"]["loss"]
    assert result["adapter"]["perplexity"] < result["base"]["perplexity"]
    assert result["gate"]["passed"], result["gate"]


class _Load:
    """Light load: two threads asking `legal` and `auto` in turn until stopped."""

    def __init__(self, service: RunningService) -> None:
        self.service, self.stop = service, threading.Event()
        self.ok, self.failures = 0, []  # type: ignore[var-annotated]
        self.threads = [threading.Thread(target=self._run, args=(m,)) for m in ("legal", "auto")]

    def _run(self, model: str) -> None:
        while not self.stop.is_set():
            try:
                _ask(self.service, model, max_tokens=6)
                self.ok += 1
            except Exception as error:  # every failure is counted and reported
                self.failures.append(repr(error))

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def test_add_under_load_fails_no_request(rig: Rig, trained: Trained) -> None:
    service = rig.service
    _answered_by_version(service, "legal", "legal@1")  # the config's adapter is version 1
    with _Load(service) as load:
        time.sleep(3)
        started = time.perf_counter()
        added = _admin(rig.service, "add", "legal", str(trained.v2))
        reply = _ask(service, "legal@2")
        rig.measured["add_to_first_answer_s"] = time.perf_counter() - started
        time.sleep(3)
    assert added["added"] == "legal@2" and added["serving"]["legal"] == "legal@1"
    assert reply.choices[0].message.content
    assert load.failures == [] and load.ok > 0
    rig.measured |= {"load_ok": load.ok, "load_failed": len(load.failures)}
    print(f"lifecycle measurements: {rig.measured}")


def test_versions_by_name_and_through_the_router(rig: Rig) -> None:
    service = rig.service
    _answered_by_version(service, "legal@2", "legal@2")
    _answered_by_version(service, "legal", "legal@1")  # added, not promoted
    promoted = _admin(service, "promote", "legal@2")
    assert promoted["serving"]["legal"] == "legal@2"
    _answered_by_version(service, "legal", "legal@2")
    routed = _answered_by_version(service, "auto", "legal@2")
    assert routed.model_extra["spillway"]["route"] == "legal"


def test_promote_a_second_version_and_roll_back(rig: Rig, trained: Trained) -> None:
    service = rig.service
    added = _admin(service, "add", "legal", str(trained.v3), "--promote")
    assert added["added"] == "legal@3" and added["serving"]["legal"] == "legal@3"
    answer_v3 = _answered_by_version(service, "legal", "legal@3").choices[0].message.content
    rolled = _admin(service, "rollback", "legal")
    assert rolled["result"] == "legal@2" and rolled["serving"]["legal"] == "legal@2"
    answer_v2 = _answered_by_version(service, "auto", "legal@2").choices[0].message.content
    assert _ask(service, "legal@3").choices[0].message.content == answer_v3  # still by version
    listed = {row["name"]: row for row in _admin(service, "list")}
    assert listed["legal"]["serving"] == "legal@2"
    assert [v["version"] for v in listed["legal"]["versions"]] == ["legal@1", "legal@2", "legal@3"]
    assert answer_v2 and answer_v3


def test_removed_version_is_an_unknown_model(rig: Rig) -> None:
    from openai import NotFoundError

    removed = _admin(rig.service, "remove", "legal@3")
    assert removed["result"] == ["legal@3"]
    with pytest.raises(NotFoundError, match="legal@3"):
        _ask(rig.service, "legal@3")
    _answered_by_version(rig.service, "legal", "legal@2")


def test_private_versions_stay_with_their_tenant(rig: Rig, trained: Trained) -> None:
    import httpx
    from openai import NotFoundError, OpenAI

    service = rig.service
    acme = OpenAI(base_url=f"{service.base_url}/v1", api_key=OTHER_KEY, max_retries=0)
    added = _admin(service, "add", "acme-legal", str(trained.v3), "--tenant", "acme")
    assert added["added"] == "acme-legal@1"
    reply = acme.chat.completions.create(
        model="acme-legal@1", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.model_extra["spillway"]["adapter_version"] == "acme-legal@1"
    assert "acme-legal" in [m.id for m in acme.models.list().data]
    assert "acme-legal" not in [m.id for m in service.client().models.list().data]
    for model in ("acme-legal", "acme-legal@1"):
        with pytest.raises(NotFoundError):
            _ask(service, model)  # another tenant (even an admin's key) cannot use it
    denied = httpx.post(  # a tenant's key cannot manage adapters
        f"{service.base_url}/v1/admin/adapters/legal/rollback",
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )
    assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"


def test_other_replicas_kept_their_processes(rig: Rig) -> None:
    session = rig.proc.pid
    now = {name: replica_pid(session, name) for name in rig.pids}
    assert now == rig.pids


def test_versions_survive_a_small_replica_restart(rig: Rig) -> None:
    """SIGKILL the small model's replica: Serve starts a new one, which reads the adapter
    registry from the state directory and serves the promoted and the run-time versions."""
    from openai import OpenAI

    session = rig.proc.pid
    old = replica_pid(session, "SmallLLM")
    os.kill(old, signal.SIGKILL)
    acme = OpenAI(base_url=f"{rig.service.base_url}/v1", api_key=OTHER_KEY, max_retries=0)
    deadline, info = time.monotonic() + RESTART_TIMEOUT_S, None
    while time.monotonic() < deadline:
        time.sleep(5)
        try:
            reply = acme.chat.completions.create(
                model="acme-legal@1", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
        except Exception:  # the ingress may answer 503 while no small replica is up
            continue
        info = reply.model_extra["spillway"]
        if not info["faults"]:  # answered by the small model, not the large fallback
            break
    assert info is not None and info["faults"] == [], info
    assert replica_pid(session, "SmallLLM") != old
    _answered_by_version(rig.service, "legal", "legal@2")  # promoted before the restart
    assert {name: replica_pid(session, name) for name in rig.pids} == rig.pids
