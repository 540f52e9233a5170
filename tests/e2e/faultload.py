"""Client-side load for the fault tests: worker threads send chat completions until told to
stop, and every outcome is classified (answered, clean error, refused, broken, hung)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

QUESTIONS = (
    "My landlord kept my security deposit. Can I sue in small claims court?",
    "How do I reverse a list in Python without modifying the original?",
    "What are the common symptoms of seasonal flu?",
    "Hello there, how are you today?",
)
CLIENT_TIMEOUT_S = 90.0
ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class Outcome:
    """One request as the client saw it."""

    kind: str  # answered | error (OpenAI-shaped) | refused | broken | hung | malformed
    # | not_routed (Ray Serve's plain-text 404 of a proxy without the app's routes)
    status: int | None = None
    query_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    phase: str = ""  # what the test was doing when the request ended


def _is_openai_error(body: Any) -> bool:
    return isinstance(body, dict) and set(body.get("error", {})) == ERROR_KEYS


def _stream_outcome(response: httpx.Response, query_id: str | None) -> Outcome:
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return Outcome("malformed", 200, query_id, detail=response.text[-300:])
    last = json.loads(events[-2]) if len(events) >= 2 else {}
    if _is_openai_error(last):  # an in-band error after the first byte: clean
        return Outcome("error", 200, query_id, detail=last["error"]["code"])
    if last.get("choices", [{}])[0].get("finish_reason") is None:
        return Outcome("malformed", 200, query_id, detail=events[-2][:300])
    return Outcome("answered", 200, query_id, info=last.get("spillway", {}))


def classify(response: httpx.Response) -> Outcome:
    query_id = response.headers.get("x-spillway-query-id")
    if response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        return _stream_outcome(response, query_id)
    if response.status_code == 404 and response.text.startswith("Path '"):
        return Outcome("not_routed", 404, query_id, detail=response.text[:120])
    try:
        body = response.json()
    except ValueError:
        return Outcome("malformed", response.status_code, query_id, detail=response.text[:300])
    if response.status_code == 200 and body.get("object") == "chat.completion":
        return Outcome("answered", 200, query_id, info=body.get("spillway", {}))
    if response.status_code != 200 and _is_openai_error(body):
        retry_after = response.headers.get("retry-after", "")
        detail = f"{body['error']['code']} retry-after={retry_after}"
        return Outcome("error", response.status_code, query_id, detail=detail)
    return Outcome("malformed", response.status_code, query_id, detail=response.text[:300])


def send_one(client: httpx.Client, number: int) -> Outcome:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": QUESTIONS[number % len(QUESTIONS)]}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": number % 3 == 0,
    }
    try:
        response = client.post("/v1/chat/completions", json=body)
    except httpx.TimeoutException as error:
        return Outcome("hung", detail=repr(error))
    except httpx.ConnectError as error:
        return Outcome("refused", detail=repr(error))
    except httpx.TransportError as error:  # reset or closed mid-response
        return Outcome("broken", detail=repr(error))
    return classify(response)


class Load:
    """`workers` threads sending requests back to back until `stop()`."""

    def __init__(self, base_url: str, api_key: str, workers: int = 3):
        self.base_url = base_url
        self.api_key = api_key
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0
        self.phase = "load"
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 10)

    def _work(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=CLIENT_TIMEOUT_S) as c:
            while not self._stop.is_set():
                with self._lock:
                    self._counter += 1
                    number = self._counter
                outcome = send_one(c, number)
                with self._lock:
                    outcome.phase = self.phase
                    self.outcomes.append(outcome)
                if outcome.kind in ("refused", "not_routed"):
                    time.sleep(0.5)  # the service is down: do not spin

    def count(self, kind: str = "answered") -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.kind == kind)

    def wait_for(self, kind: str, at_least: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(kind) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {self.count(kind)} {kind} in {timeout_s}s: {self.summary()}"
                )
            time.sleep(0.2)

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(o.kind for o in self.outcomes))

    def by_phase(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(f"{o.phase}:{o.kind}" for o in self.outcomes))

    def query_ids(self) -> set[str]:
        """Ids of every request the server finished (answered or a clean error)."""
        with self._lock:
            return {o.query_id for o in self.outcomes if o.query_id}


# ----- the processes of a run -------------------------------------------------------------------
def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _in_session(pid: int, session: int) -> bool:
    try:
        return os.getsid(pid) == session
    except OSError:
        return False


def named_pid(session: int, marker: str) -> int:
    """The one process of the serve process `session` whose command line holds `marker`."""
    found = [pid for pid in pids() if marker in cmdline(pid) and _in_session(pid, session)]
    assert len(found) == 1, f"expected one process '{marker}', found {found}"
    return found[0]


def replica_pid(session: int, deployment: str) -> int:
    """The pid of the Serve replica actor of `deployment` started by the serve process
    `session` (Ray names replica processes `ray::ServeReplica:<app>:<deployment>`)."""
    return named_pid(session, f"ServeReplica:spillway:{deployment}")


def engine_pid(session: int, deployment: str) -> int:
    """The vLLM engine-core process a model replica started (a child of the replica)."""
    replica = replica_pid(session, deployment)
    children = [pid for pid in pids() if _parent(pid) == replica and "EngineCore" in cmdline(pid)]
    assert len(children) == 1, f"expected one engine process under {replica}: {children}"
    return children[0]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])
