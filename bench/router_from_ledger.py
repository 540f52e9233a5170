"""The `router train --from-ledger` loop on a synthetic ledger built from CLINC150.

Scenario: the serving router was trained on CLINC150 train without three of the 15 `travel`
intents (translate, timezone, exchange_rate: 20% of travel's rows): traffic drifted to
queries its data never showed, and it sends many of them elsewhere. The ledger replays CLINC150
val through it (the text kept, as for a tenant with keep_query_text), and every query of those
intents that it misroutes gets feedback with `route: travel`. Then `spillway router train
--from-ledger --data <the serving router's training file>` trains on both and compares the new
router with the serving one on the 20% of ledger rows it held out (`--ledger-only`: without
--data).

    .venv/bin/python bench/router_from_ledger.py --work /tmp/ledger-loop [--kind tfidf]

Prints (and with --json-out writes) the command's report: accuracy of both routers on the
held-out corrected rows and on the held-out confident rows.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DRIFT_INTENTS = ("translate", "timezone", "exchange_rate")
DRIFT_LABEL = "travel"
CLINC = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "clinc150"


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def train_serving(records: list[dict[str, Any]], work: Path, kind: str) -> Path:
    """The serving router, trained without the drift intents."""
    from router_training.train import train_router

    data = work / "serving-train.jsonl"
    with data.open("w") as handle:
        for record in records:
            if record.get("intent") not in DRIFT_INTENTS:
                handle.write(json.dumps({"text": record["text"], "label": record["label"]}) + "\n")
    out = work / "serving"
    train_router(data, out, kind=kind, progress=False)
    return out


def write_ledger(url: str, records: list[dict[str, Any]], serving: Path) -> dict[str, int]:
    """Route every record with the serving router into a ledger row (with its text); feedback
    corrects the drift intents' misrouted rows. Returns counts."""
    from orchestrator.ledger import Ledger, LedgerRow
    from router_training.artifact import load_router

    router = load_router(serving)
    texts = [r["text"] for r in records]
    predictions = router.predict(texts)
    corrections = []
    with Ledger(url) as ledger:
        for record, prediction in zip(records, predictions, strict=True):
            query_id = uuid.uuid4().hex
            ledger.record(
                LedgerRow(
                    query_id=query_id,
                    created_at=datetime.now(UTC),
                    tenant="bench",
                    status="ok",
                    http_status=200,
                    model_requested="auto",
                    route=prediction.label,
                    route_probability=prediction.probability,
                    router_version=router.version,
                    query_text=record["text"],
                )
            )
            drifted = record.get("intent") in DRIFT_INTENTS
            if drifted and prediction.route != DRIFT_LABEL:
                corrections.append(query_id)
        assert ledger.flush()
        for query_id in corrections:
            ledger.add_feedback(query_id, 0.0, correct=False, route=DRIFT_LABEL)
    drift_rows = sum(r.get("intent") in DRIFT_INTENTS for r in records)
    return {"rows": len(records), "drift_rows": drift_rows, "corrected": len(corrections)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="Empty working directory.")
    parser.add_argument("--kind", default="tfidf", help="Kind of both routers (train --kind).")
    parser.add_argument("--json-out", type=Path, help="Also write the report here.")
    parser.add_argument("--ledger-only", action="store_true", help="Train on the ledger alone.")
    args = parser.parse_args()
    from click.testing import CliRunner

    from orchestrator.cli import main as spillway

    args.work.mkdir(parents=True, exist_ok=True)
    serving = train_serving(read_records(CLINC / "train.jsonl"), args.work, args.kind)
    url = f"sqlite:///{args.work / 'ledger.db'}"
    counts = write_ledger(url, read_records(CLINC / "val.jsonl"), serving)
    started = time.perf_counter()
    extra = [] if args.ledger_only else ["--data", str(args.work / "serving-train.jsonl")]
    result = CliRunner().invoke(
        spillway,
        ["router", "train", "--from-ledger", "--ledger-url", url, "--serving", str(serving),
         "--out", str(args.work / "retrained"), "--kind", args.kind, "--json", "--no-progress",
         *extra],
    )  # fmt: skip
    if result.exit_code != 0:
        raise SystemExit(result.output)
    report = {**counts, **json.loads(result.stdout), "seconds": time.perf_counter() - started}
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
