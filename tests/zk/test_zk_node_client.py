"""An independent client nobody here wrote reads the simulator: node-zklib (npm) on the
machine's node. Skipped, saying why, when node or the npm registry is not reachable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.zk_terminal.sim import ZkSimulator

NODE_ZKLIB = "node-zklib@1.3.0"
#: The read of node-zklib 1.3.0 ``getAttendances`` and its time decoding, nothing else.
SCRIPT = r"""
const ZKLib = require('node-zklib');
(async () => {
  const zk = new ZKLib('127.0.0.1', Number(process.argv[1]), 10000, 4000);
  await zk.createSocket();
  const info = await zk.getInfo();
  const logs = await zk.getAttendances();
  const d = logs.data;
  console.log(JSON.stringify({n: d.length, err: logs.err ? String(logs.err) : null,
    logCounts: info.logCounts, first: d[0].deviceUserId, last: d[d.length - 1].deviceUserId,
    users: [...new Set(d.map(r => r.deviceUserId))].length}));
  await zk.disconnect();
  process.exit(0);
})().catch(e => { console.log(JSON.stringify({error: String(e)})); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_zklib() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: cannot run node-zklib")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = cache / "attendance-gateway-tests" / NODE_ZKLIB.replace("@", "-")
    if not (prefix / "node_modules" / "node-zklib" / "zklib.js").exists():
        try:
            r = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), NODE_ZKLIB],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {NODE_ZKLIB} timed out: npm registry unreachable?")
        if r.returncode != 0:
            why = r.stderr[-300:]
            pytest.skip(f"npm install {NODE_ZKLIB} failed (registry unreachable?): {why}")
    return prefix


def _node_read(prefix: Path, port: int) -> dict[str, object]:
    r = subprocess.run(
        ["node", "-e", SCRIPT, str(port)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=prefix,
        env={**os.environ, "NODE_PATH": str(prefix / "node_modules")},
    )
    lines = r.stdout.strip().splitlines()
    assert lines, r.stderr[-500:]
    out: dict[str, object] = json.loads(lines[-1])
    return out


@pytest.mark.parametrize("records", [700, 3000])
def test_node_zklib_reads_the_whole_log(node_zklib: Path, make_sim, records: int) -> None:
    # A terminal's pace between frames: node-zklib takes one frame per socket read (its
    # ``handleOnData``) and loses frames that arrive merged, which a real terminal, slower
    # than its client, does not cause. On this shared test machine node itself may stall
    # longer than the pace, so it gets up to three tries; every try must be right as far as
    # it got. 3000 records = 120 KB: two pipelined chunk reads of 1008-byte frames.
    sim: ZkSimulator = make_sim(serial="NODE0000001", frame_gap_s=0.004)
    sim.bulk_load(records, users=40)
    tries = []
    for _ in range(3):
        out = _node_read(node_zklib, sim.port)
        tries.append(out)
        assert "error" not in out, tries
        assert out["first"] == "1001" and out["logCounts"] == records, tries
        assert isinstance(out["n"], int) and out["n"] <= records, tries
        if out["err"] is None:
            break
    assert out["err"] is None, f"node-zklib never read the whole log: {tries}"
    assert (out["n"], out["users"], out["last"]) == (records, 40, str(1001 + (records - 1) % 40))
