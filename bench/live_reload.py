"""The live benchmark's reload step: calibrated thresholds put in force on the running service
(`spillway cascade calibrate --apply`, `PUT /v1/admin/cascade`), the policy in force read back
(`GET /v1/admin/cascade`), and the model processes' ids compared before and after, to show that
no model was restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bench.live_calibrate import calibrate_with_cli
from cascade.policy import CascadePolicy

ADMIN_PATH = "/v1/admin/cascade"
MODEL_DEPLOYMENTS = ("SmallLLM", "LargeLLM")


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def policy_in_force(base_url: str, key: str) -> dict[str, Any]:
    """`GET /v1/admin/cascade`: the policy, its source, version and when it was applied."""
    response = httpx.get(base_url + ADMIN_PATH, headers=_headers(key), timeout=60)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def put_policy(base_url: str, key: str, policy: CascadePolicy) -> dict[str, Any]:
    """`PUT /v1/admin/cascade`; the service's answer (the policy now in force)."""
    body = policy.model_dump(mode="json")
    response = httpx.put(base_url + ADMIN_PATH, json=body, headers=_headers(key), timeout=60)
    if response.status_code >= 400:
        raise RuntimeError(f"PUT {ADMIN_PATH}: {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def calibrate_from_ledger(
    ledger: Path, large_quality: float, target: str, out: Path, *extra: str
) -> CascadePolicy:
    """`spillway cascade calibrate --from-ledger` on the rows that got feedback, written to
    `out`; `extra` adds options (`--apply URL --api-key KEY`, `--signal learned`)."""
    source = ["--from-ledger", "--ledger-url", f"sqlite:///{ledger}"]
    source += ["--large-quality", f"{large_quality:.6f}"]
    return calibrate_with_cli(source, target, out, *extra)


def model_processes(session: int) -> dict[str, int]:
    """Pid of each model deployment's replica and of its vLLM engine process, for the serve
    process `session` (a restarted replica or engine gets a new pid)."""
    from tests.e2e.faultload import engine_pid, replica_pid

    found: dict[str, int] = {}
    for deployment in MODEL_DEPLOYMENTS:
        found[f"{deployment}.replica"] = replica_pid(session, deployment)
        found[f"{deployment}.engine"] = engine_pid(session, deployment)
    return found


def processes_unchanged(before: dict[str, int], after: dict[str, int]) -> bool:
    """True when every model process of `before` still has the same pid (none restarted)."""
    return bool(before) and before == after


def policy_summary(state: dict[str, Any]) -> dict[str, Any]:
    """What the JSON records of the policy in force: source, version, and the policy itself."""
    return {key: state.get(key) for key in ("source", "version", "scope", "policy")}
