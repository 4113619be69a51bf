"""``gatewayctl bundle``: a support tarball for whoever helps the technician.

(Its standard-library imports live in the functions: every command module is imported to
build the parser, and ``status`` must start fast.)

Contents: the config with every ``password`` value redacted (the password file's content is
never read into it), ``status --json``, ``doctor --json``, store figures, the remote-command
audit (the newest 1000 rows), the last 1000 journal lines when ``journalctl`` exists, and the
versions of everything.
"""

from __future__ import annotations

import argparse
from typing import Any, BinaryIO

from gateway.cli import local, outfile
from gateway.cli.output import Progress, emit_json, json_flag
from gateway.ops.support import journal, redact, versions

__all__ = ["journal", "redact", "register", "versions"]  # redact: kept importable from here


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bundle",
        help="a support tarball: config (redacted), status, doctor, logs",
        description=__doc__.split("\n\n")[2] if __doc__ else None,
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="default: ./gatewayctl-bundle-<gateway>-<UTC time>.tar.gz",
    )
    json_flag(p)
    p.set_defaults(func=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    import time

    from gateway.cli.cmd_doctor import report
    from gateway.cli.cmd_status import gather

    s = local.settings(args)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # Checked before any work: one line and exit 2 if it cannot be written (issue 12).
    out = outfile.check(args, args.output or f"gatewayctl-bundle-{s.gateway_id}-{stamp}.tar.gz")
    steps: list[tuple[str, Any]] = [
        ("config.toml", lambda: redact(s.path.read_text(encoding="utf-8", errors="replace"))),
        ("status.json", lambda: gather(s)),
        ("doctor.json", lambda: report(args)[0]),
        ("store.json", lambda: _store_figures(s)),
        ("remote_audit.json", lambda: _remote_audit(s)),
        ("journal.txt", journal),
        ("versions.json", versions),
    ]
    progress = Progress("bundle", len(steps))
    members: list[str] = []
    try:
        # The config, journal and store figures are private: created 0600 (issue 12).
        with outfile.private(out) as fh:
            _write_tar(
                fh, steps, gateway_id=s.gateway_id, stamp=stamp, progress=progress, members=members
            )
    except OSError as err:
        outfile.failed(args, out, err)
    progress.finish()
    if getattr(args, "json", False):
        emit_json({"path": str(out), "members": members, "bytes": out.stat().st_size})
    else:
        print(
            f"support bundle written: {out} ({out.stat().st_size // 1024} KiB: "
            f"{', '.join(members)})"
        )
    return 0


def _write_tar(
    fh: BinaryIO,
    steps: list[tuple[str, Any]],
    *,
    gateway_id: str,
    stamp: str,
    progress: Progress,
    members: list[str],
) -> None:
    import io
    import json
    import tarfile
    import time

    with tarfile.open(fileobj=fh, mode="w:gz") as tar:
        for i, (part, fn) in enumerate(steps):
            progress.update(i, note=part)
            name = part
            try:
                content = fn()
            except Exception as err:  # one broken part must not lose the others
                name, content = part + ".error", f"{type(err).__name__}: {err}\n"
            if content is None:
                continue
            data = (
                content if isinstance(content, str) else json.dumps(content, indent=2, default=str)
            ).encode()
            info = tarfile.TarInfo(f"bundle-{gateway_id}-{stamp}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
            members.append(name)
        progress.update(len(steps))


def _store_figures(s: local.Settings) -> dict[str, Any]:
    with local.open_store(s) as store:
        fig = store.figures()
        fig["daily"] = store.query(
            "SELECT day, received, delivered FROM daily ORDER BY day DESC LIMIT 30"
        )
        fig["by_terminal_status"] = store.query(
            "SELECT terminal, status, count(*) FROM punches GROUP BY terminal, status"
        )
        fig["manual_punches"] = store.query("SELECT count(*) FROM manual_audit")[0][0]
    return fig


def _remote_audit(s: local.Settings) -> list[dict[str, Any]]:
    """Issue 16: every remote command, accepted or refused, newest first."""
    from gateway.remote.ledger import recent

    with local.open_store(s) as store:
        return recent(store, 1000)
