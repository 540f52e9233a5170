"""`spillway serve`'s checks before it starts Ray (no Ray here)."""

from __future__ import annotations

import copy
import socket
from typing import Any

import yaml
from click.testing import CliRunner

from orchestrator.cli import main
from tests.fakes import CONFIG


def test_serve_stops_before_ray_when_the_port_is_taken(tmp_path: Any) -> None:
    path = tmp_path / "spillway.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(CONFIG)))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"Cannot serve on 127.0.0.1:{port}: Address already in use." in result.output
