"""What the Debian package needs from gatewayctl (issue 17): the version and a failed upgrade in
``status``; a man page generated from the parser that lists every command and option."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
from pathlib import Path

from gateway import __version__
from gateway.cli import build_parser
from tests.pipeline.harness import write_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"),
                 "control_socket": str(tmp_path / "none.sock")},
        mqtt={"host": "127.0.0.1", "port": 1},
        terminals=[{"name": "lobby", "driver": "virtual"}])


def test_status_shows_the_version_and_a_failed_upgrade(tmp_path, ctl):
    cfg = _config(tmp_path)
    r = ctl(cfg, "status", "--json")
    assert r.json()["package"] == {"installed": __version__, "running": None}
    human = ctl(cfg, "status")
    assert f"gw-test   {__version__}   daemon not running" in human.out
    assert "Upgrade" not in human.out

    # What the package's postinst leaves when the new version did not start.
    (tmp_path / "data" / "upgrade-failed").write_text(
        f"from=0.0.9\nto={__version__}\nat=2026-11-29T03:00:00Z\n")
    r = ctl(cfg, "status", "--json")
    assert r.rc == 1
    assert r.json()["package"]["upgrade_failed"] == {
        "from": "0.0.9", "to": __version__, "at": "2026-11-29T03:00:00Z"}
    human = ctl(cfg, "status")
    assert human.rc == 1
    assert f"Upgrade   FAILED: 0.0.9 -> {__version__} did not start" in human.out
    assert "roll back" in human.out


def _manpage_module():
    spec = importlib.util.spec_from_file_location("manpage", REPO / "packaging" / "manpage.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _walk(parser: argparse.ArgumentParser, path: str, out: dict[str, list[str]]) -> None:
    out[path] = [o for a in parser._actions for o in a.option_strings
                 if o.startswith("--") and o != "--help"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                _walk(child, f"{path} {name}".strip(), out)


def test_man_page_lists_every_command_and_option(tmp_path):
    page = _manpage_module().render(build_parser(), __version__, "2026-11-29")
    commands: dict[str, list[str]] = {}
    _walk(build_parser(), "", commands)
    for path, options in commands.items():
        if path:
            assert f"\\fB{path.replace('-', chr(92) + '-')}\\fR" in page, path
        for opt in options:
            assert opt.replace("-", "\\-") in page, (path, opt)
    assert f'"attendance-gateway {__version__}"' in page
    # groff reads it without a warning (-ww: all warnings).
    src = tmp_path / "gatewayctl.1"
    src.write_text(page)
    res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(src)],
                         capture_output=True, text=True, check=True)
    assert res.stderr == ""
