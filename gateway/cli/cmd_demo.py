"""``gatewayctl demo``: the whole chain on one machine, punches flowing.

A private Mosquitto on a free port, simulated terminals (a ZK terminal simulator, a serial
card-reader simulator on a pty, a push (ADMS) face terminal simulator and a ``virtual``
terminal), the real daemon as a child
process with a generated config, and a subscriber that prints every punch as the cloud would
receive it. Everything lives under ``--dir`` (default ``.demo/``); Ctrl-C stops it all.

Once running it prints the commands to try and reads letters on stdin that break things
(stop the broker, unplug the reader, silence the ZK terminal) and mend them
(``gateway.cli.demo_play``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.cli import demo_play


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole chain locally: simulators, broker, daemon",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--dir", default=".demo", help="working directory (default: .demo)")
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument("--rate", type=float, default=0.5, help="punches/s per simulated terminal")
    p.set_defaults(func=_demo)


def _hook(module: str) -> Any:
    """The simulator module's ``demo_simulator`` context manager, if it has one."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    return getattr(importlib.import_module(module), "demo_simulator", None)


def _demo(args: argparse.Namespace) -> int:
    from gateway.devkit.broker import MosquittoBroker, MosquittoMissing
    from gateway.devkit.subscriber import Received, Subscriber

    work = Path(args.dir).resolve()
    intro = demo_play.Intro()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stack = contextlib.ExitStack()
    try:
        try:
            broker = stack.enter_context(MosquittoBroker(work / "broker"))
        except MosquittoMissing as err:
            print(f"demo: {err}", file=sys.stderr)
            return 2
        intro.say(f"attendance-gateway demo: everything lives under {demo_play.rel(work)}/")
        intro.say(f"broker     mosquitto on 127.0.0.1:{broker.port}")
        terminals, sims = _start_simulators(stack, work, args.rate, intro)
        cfg = work / "config.toml"
        cfg.write_text(_config(work, broker.port, terminals))
        intro.say(f"config     {cfg}")
        seen: dict[str, int] = {"punches": 0, "last_seq": 0, "gaps": 0}
        lock = threading.Lock()

        def show(msg: Received) -> None:
            if msg.topic.endswith("/punches"):
                for p in msg.json()["punches"]:
                    with lock:
                        seen["punches"] += 1
                        if p["seq"] > seen["last_seq"] + 1 and seen["last_seq"]:
                            seen["gaps"] += 1
                        seen["last_seq"] = max(seen["last_seq"], p["seq"])
                    print(
                        f"punch      seq={p['seq']:<5} {p['terminal']:<10} user={p['user_id']:<8}"
                        f" {p['state']:<10} {p['verify']:<11} {p['time']}",
                        flush=True,
                    )
            elif msg.topic.endswith("/status") and "/terminals/" not in msg.topic:
                print(f"status     {msg.payload.decode()}", flush=True)
            elif "/terminals/" in msg.topic:
                name = msg.topic.split("/")[-2]
                print(f"terminal   {name}: {msg.payload.decode()}", flush=True)

        stack.enter_context(Subscriber("127.0.0.1", broker.port, "attendance/#", on_message=show))
        log = (work / "daemon.log").open("wb")
        stack.callback(log.close)
        daemon = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gateway", "--config", str(cfg), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        stack.callback(_stop_process, daemon)
        intro.say(f"daemon     pid {daemon.pid}, log {demo_play.rel(work / 'daemon.log')}")
        intro.say("           punches appear below as the cloud receives them; Ctrl-C stops")
        console = demo_play.Console(
            config=cfg,
            socket=work / "control.sock",
            broker=broker,
            zk=sims.get("zk"),
            reader=sims.get("reader"),
        )
        console.header(intro.lines)
        stack.callback(console.stop)  # before the broker and simulators go (LIFO)
        console.start()
        deadline = time.monotonic() + args.duration if args.duration else None
        while daemon.poll() is None and (deadline is None or time.monotonic() < deadline):
            if console.quit.wait(0.2):
                break
        if daemon.poll() not in (None, 0):
            print(
                f"demo: the daemon exited with {daemon.returncode}; see {work / 'daemon.log'}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.5)
        print(
            f"\ndemo: {seen['punches']} punches received, last seq {seen['last_seq']}, "
            f"{seen['gaps']} gap(s)"
        )
        return 0 if seen["punches"] else 1
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    finally:
        stack.close()


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _start_simulators(
    stack: contextlib.ExitStack, work: Path, rate: float, intro: demo_play.Intro
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Start what simulators exist; return ``[[terminals]]`` tables and the simulators."""
    terminals: list[dict[str, Any]] = []
    sims: dict[str, Any] = {}
    if (zk_demo := _hook("drivers.zk_terminal.sim")) is not None:
        zk = stack.enter_context(zk_demo(rate=rate))
        sims["zk"] = zk
        intro.say(f"terminal   lobby: ZK simulator on 127.0.0.1:{zk.port} (serial {zk.serial})")
        terminals.append(
            {
                "name": "lobby",
                "driver": "zk",
                "host": "127.0.0.1",
                "port": zk.port,
                "poll_interval_s": 60,
                "live": True,
            }
        )
    if (serial_demo := _hook("drivers.serial_reader.sim")) is not None:
        reader = stack.enter_context(serial_demo(rate=rate))
        # A stable path (like /dev/serial/by-id): unplugging and plugging back keeps it.
        demo_play.link_reader(reader, work / "ttyDEMO0")
        sims["reader"] = reader
        where = demo_play.rel(Path(reader.port_url))
        intro.say(f"terminal   side-door: serial reader simulator on {where}")
        terminals.append(
            {
                "name": "side-door",
                "driver": "serial",
                "port": reader.port_url,
                "framing": reader.framing,
                "debounce_s": 1,
            }
        )
    if (adms_demo := _hook("drivers.adms.sim")) is not None:
        face = stack.enter_context(adms_demo(rate=rate / 2))
        sims["adms"] = face
        intro.say(f"terminal   entrance-face: push (ADMS) terminal simulator → {face.server}")
        # The [adms] listener's address rides on the terminal's table; _config moves it out.
        terminals.append(
            {"name": "entrance-face", "driver": "adms", "serial_number": face.sn,
             "_listen": face.server}
        )  # fmt: skip
    terminals.append({"name": "virtual-1", "driver": "virtual", "rate": rate})
    intro.say("terminal   virtual-1: in-process virtual terminal")
    return terminals, sims


def _toml_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str | bool | int | float) else str(v)


def _config(work: Path, port: int, terminals: list[dict[str, Any]]) -> str:
    lines = [
        "# generated by gatewayctl demo",
        "[gateway]",
        'id = "demo-gw"',
        f'data_dir = "{work / "data"}"',
        'timezone = "Asia/Shanghai"',
        "health_interval_s = 10",
        'time_sync = "assume"',
        f'control_socket = "{work / "control.sock"}"',
        "",
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "tls = false",
        "",
        "[leds]",
        'backend = "null"',
        "",
    ]
    for t in terminals:
        if "_listen" in t:  # the push terminals' listener (issue 15), loopback only
            lines += [
                "[adms]",
                f'listen = "{t["_listen"]}"',
                'allow_networks = ["127.0.0.0/8"]',
                "",
            ]
    for t in terminals:
        lines.append("[[terminals]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in t.items() if not k.startswith("_")]
        lines.append("")
    return "\n".join(lines)
