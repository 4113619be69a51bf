"""Issue 12: the gateway as installed, run by a real systemd 252, hardening as shipped.

One booted Debian bookworm container (tests/systemd/container.py) for the whole module; the
tests run in file order and build on each other, like a technician's day:
install the documented way (offline) → configure → start (READY + STATUS) → punches from a ZK
simulator and a serial reader reach the container's broker → status/doctor/backup as root
and as a technician → a long ZK download and backups under the watchdog → kill -9 →
stop (retained offline) → restore as root → reboot.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.systemd.conftest import BUNDLE, CHECKOUT
from tests.systemd.container import Container, wait_until
from tests.systemd.site import (
    BIG_RECORDS,
    BIG_SIM,
    BIG_TERMINAL,
    CONFIG,
    DATA,
    DB,
    GW,
    STATE,
    UNIT,
    VENV_PY,
    ZK_RECORDS,
    published,
    q,
    report,
    service,
    settled,
    start_reader_and_subscriber,
    swipe,
    wait_active,
)


# -- install and start ---------------------------------------------------------------------
def test_rig_enforces_device_policy(ct: Container) -> None:
    """Without nspawn's bpf() the unit's DevicePolicy= would silently not apply."""
    r = ct.sh(
        "systemd-run -q --wait --pipe -p DevicePolicy=strict sh -c 'echo > /dev/null'",
        check=False,
    )
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r


def test_install_offline_the_documented_way(ct: Container) -> None:
    """docs/install.md §3: the offline bundle's `sudo sh install.sh` (no network in here)."""
    r = ct.sh(f"cd {BUNDLE} && sh install.sh", check=False)
    report(f"bundle install.sh exit {r.returncode} (the package starts the example config)")
    assert r.returncode == 0, r.stdout + r.stderr
    # The unit is installed byte for byte: the hardening under test is the shipped one.
    ct.sh(f"cmp /lib/systemd/system/{UNIT}.service {CHECKOUT}/systemd/{UNIT}.service")
    modes = ct.sh(
        f"stat -c '%n %U:%G %a' /etc/attendance-gateway {DATA} {DATA}/backups"
    ).stdout.split("\n")
    assert modes[:3] == [
        "/etc/attendance-gateway root:attgw 750",
        f"{DATA} attgw:attgw 750",
        f"{DATA}/backups attgw:attgw 2770",
    ], modes
    assert ct.sh("systemctl is-enabled attendance-gateway").stdout.strip() == "enabled"


def test_configure_and_start_ready_with_status(ct: Container) -> None:
    """docs/install.md §4: edit the config, check it, restart; READY and STATUS= as shipped."""
    ct.sh(
        "install -m 0640 -o root -g attgw /dev/stdin /etc/attendance-gateway/config.toml "
        f"<<'EOF'\n{CONFIG}EOF"
    )
    ct.sh(f"{GW} config check")
    ct.sh(f"systemd-run -q --unit=attgw-test-zk {GW} sim zk --port 4370 --records {ZK_RECORDS}")
    start_reader_and_subscriber(ct)
    cur = ct.cursor()
    r = ct.sh(f"systemctl restart {UNIT}", check=False)
    journal = ct.journal(UNIT, cur)
    if r.returncode != 0 and "unrecognized arguments: --config" in journal:
        # The shipped ExecStart= puts --config after `run`, which this branch's CLI rejects
        # (issue 12, options anywhere: branch i12a). A drop-in swaps only that order so the
        # rest of the lifecycle can be checked; test_execstart_as_shipped fails meanwhile.
        STATE["execstart_dropin"] = journal
        ct.sh(
            f"mkdir -p /etc/systemd/system/{UNIT}.service.d && cat > "
            f"/etc/systemd/system/{UNIT}.service.d/zz-test-execstart.conf <<'EOF'\n"
            "[Service]\nExecStart=\n"
            f"ExecStart={GW} --config /etc/attendance-gateway/config.toml run\nEOF\n"
            "systemctl daemon-reload"
        )
        report("WORKAROUND: ExecStart drop-in (--config before run) until options-anywhere")
        cur = ct.cursor()
        ct.sh(f"systemctl restart {UNIT}")
        journal = ct.journal(UNIT, cur)
    s = wait_active(ct)
    assert s["Type"] == "notify"
    assert re.search(r"terminals \d/\d online", s["StatusText"]), s
    assert "Started attendance-gateway.service" in journal, journal
    # ConfigurationDirectoryMode= matches tmpfiles.d (it logged a mode warning every start).
    assert "mode is different" not in journal, journal
    report(f"READY: active (running), STATUS={s['StatusText']!r}")


def test_punches_from_zk_and_serial_reach_the_broker(ct: Container) -> None:
    cards = swipe(ct, 3)

    def arrived() -> bool:
        got = published(ct)
        users = {str(p["user_id"]) for p in got if p["terminal"] == "side-door"}
        return sum(p["terminal"] == "lobby" for p in got) >= ZK_RECORDS and set(cards) <= users

    wait_until(arrived, 120, f"{ZK_RECORDS} ZK punches and 3 cards at the container's broker")
    # Delivered marks are written with the next insert or within 5 s (issue 18): wait for them.
    wait_until(lambda: q(ct, "SELECT count(*) FROM punches WHERE status = 0") == "0", 30,
               "every published punch marked delivered in the store")


def test_status_and_doctor_as_root_and_technician(ct: Container) -> None:
    ct.sh("usermod -aG attgw tech")  # docs/install.md §4
    for user in (None, "tech"):
        st = ct.sh("cd / && gatewayctl status", user=user, check=False)
        assert "daemon running" in st.stdout and "Traceback" not in st.stderr, st
        doc = ct.sh("cd / && gatewayctl doctor", user=user, check=False)
        assert "PASS  database" in doc.stdout and "Traceback" not in doc.stderr, doc
        js = ct.sh("cd / && gatewayctl status --json", user=user, check=False)
        terms = json.loads(js.stdout)["terminals"]
        states = {k: v.get("state") for k, v in terms.items()} if isinstance(terms, dict) else terms
        report(f"status as {user or 'root'}: exit {st.returncode}, terminals {states}")


def test_healthy_site_status_exits_zero(ct: Container) -> None:
    """A site whose terminals all work is healthy: status and doctor exit 0 (PRODUCT §6)."""

    def healthy() -> bool:
        st = ct.sh("cd / && gatewayctl status", user="tech", check=False)
        doc = ct.sh("cd / && gatewayctl doctor", user="tech", check=False)
        last["out"] = st.stdout + doc.stdout
        return (st.returncode, doc.returncode) == (0, 0)

    last = {"out": ""}
    try:
        wait_until(healthy, 60, "status and doctor to exit 0", every=2)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{last['out']}") from None


def test_backups_by_technician_and_root_are_private(ct: Container) -> None:
    t = ct.sh(f"cd / && gatewayctl backup -o {DATA}/backups/manual-tech.db", user="tech")
    assert "backup written" in t.stdout
    ct.sh(f"cd / && gatewayctl backup -o {DATA}/backups/manual-root.db")
    got = ct.sh(f"stat -c '%U:%G %a' {DATA}/backups/manual-tech.db {DATA}/backups/manual-root.db")
    assert got.stdout.split("\n")[:2] == ["tech:attgw 640", "root:attgw 640"], got.stdout


# -- the watchdog through long work ------------------------------------------------------------
def test_watchdog_holds_through_a_long_zk_download_and_backups(ct: Container) -> None:
    ct.sh(f"systemd-run -q --unit=attgw-test-bigzk {VENV_PY} -c '{BIG_SIM}'")
    wait_until(
        lambda: "ready" in ct.sh("journalctl -u attgw-test-bigzk -b --no-pager").stdout,
        120,
        "the big ZK simulator",
    )
    try:
        _long_download_and_backups(ct)
    finally:
        ct.sh("systemctl stop attgw-test-bigzk")  # later restarts must not download it again


def _long_download_and_backups(ct: Container) -> None:
    ct.sh(f"cat >> /etc/attendance-gateway/config.toml <<'EOF'{BIG_TERMINAL}EOF")
    ct.sh(f"{GW} config check")
    cur = ct.cursor()
    ct.sh(f"systemctl restart {UNIT}")
    s0 = wait_active(ct)
    t0 = float(ct.sh("cat /proc/uptime").stdout.split()[0])

    def downloaded() -> bool:
        n = int(q(ct, "SELECT count(*) FROM punches WHERE terminal = 'warehouse'") or 0)
        s = service(ct)
        assert s["MainPID"] == s0["MainPID"] and s["NRestarts"] == s0["NRestarts"], (
            f"the daemon was restarted during the download: {s}\n{ct.journal(UNIT, cur)[-3000:]}"
        )
        return n >= BIG_RECORDS

    wait_until(downloaded, 600, f"{BIG_RECORDS} records from the slow terminal", every=2)
    took = float(ct.sh("cat /proc/uptime").stdout.split()[0]) - t0
    journal = ct.journal(UNIT, cur)
    assert "Watchdog timeout" not in journal, journal[-3000:]
    report(f"long ZK download: {BIG_RECORDS} records in {took:.0f} s, no watchdog restart")
    # A manual backup of the now big store, as root, while the daemon writes and backs up.
    size = ct.sh(f"stat -c %s {DB}").stdout.strip()
    ct.sh(f"cd / && gatewayctl backup -o {DATA}/backups/manual-big.db")
    wait_until(
        lambda: (
            ct.sh(f"ls {DATA}/backups/ | grep -c '^gateway-'", check=False).stdout.strip()
            not in ("", "0")
        ),
        120,
        "an automatic backup",
    )
    s = service(ct)
    assert s["MainPID"] == s0["MainPID"] and s["NRestarts"] == s0["NRestarts"], s
    report(f"backups of a {int(size) // 1024} KiB store during the run: no restart")


# -- kill -9, stop, restore, reboot ------------------------------------------------------------
def test_kill9_restarts_and_nothing_is_lost(ct: Container) -> None:
    settled(ct)
    ct.sh("systemctl stop mosquitto")  # committed punches stay pending at the kill
    try:
        before = int(q(ct, "SELECT count(*) FROM punches"))
        cards = swipe(ct, 4)
        wait_until(
            lambda: int(q(ct, "SELECT count(*) FROM punches")) >= before + 4,
            60,
            "4 cards committed",
        )
        s0 = service(ct)
        assert int(q(ct, "SELECT count(*) FROM punches WHERE status = 0")) >= 4
        ct.sh(f"kill -9 {s0['MainPID']}")
        s1 = wait_active(ct, not_pid=s0["MainPID"])
        assert int(s1["NRestarts"]) == int(s0["NRestarts"]) + 1
        # The whole boot's journal: a cursor read just before the kill raced journald once.
        journal = ct.journal(UNIT)
        assert "code=killed, status=9/KILL" in journal, journal[-3000:]
    finally:
        ct.sh("systemctl start mosquitto")
    wait_until(
        lambda: q(ct, "SELECT count(*) FROM punches WHERE status <> 1") == "0",
        180,
        "every committed punch delivered after the restart",
        every=2,
    )
    seqs = q(ct, "SELECT min(seq), max(seq), count(*) FROM punches").split("|")
    assert int(seqs[0]) == 1 and seqs[1] == seqs[2], seqs  # gap-free
    users = {str(p["user_id"]) for p in published(ct) if p["terminal"] == "side-door"}
    assert set(cards) <= users
    assert ct.sh(f"sqlite3 -readonly {DB} 'PRAGMA integrity_check'").stdout.strip() == "ok"


def test_stop_is_clean_and_offline_is_retained(ct: Container) -> None:
    ct.sh(f"systemctl stop {UNIT}")
    s = ct.show(UNIT, "ActiveState", "Result", "ExecMainStatus")
    assert s == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, s
    msg = ct.sh("mosquitto_sub -h 127.0.0.1 -t attendance/ct-gw1/status -C 1 -W 10").stdout.strip()
    assert json.loads(msg)["state"] == "offline", msg


def test_restore_as_root_gives_the_store_back_to_the_service(ct: Container) -> None:
    ct.sh(f"cd / && gatewayctl restore {DATA}/backups/manual-root.db")
    got = ct.sh(f"stat -c '%U:%G %a' {DB}").stdout.strip()
    assert got == "attgw:attgw 640", got
    cur = ct.cursor()
    ct.sh(f"systemctl start {UNIT}")
    settled(ct)
    cards = swipe(ct, 1)
    wait_until(
        lambda: q(ct, f"SELECT status FROM punches WHERE record LIKE '%{cards[0]}%'") == "1",
        60,
        "a punch stored and delivered after the restore",
    )
    assert "readonly database" not in ct.journal(UNIT, cur)


def test_reboot_brings_it_back_by_itself(ct: Container) -> None:
    before = service(ct)["MainPID"]
    ct.reboot()
    s = wait_active(ct, timeout=180)
    assert s["MainPID"] != "0"
    report(
        f"after reboot: {s['ActiveState']} ({s['SubState']}), MainPID {s['MainPID']} "
        f"(was {before} before the reboot)"
    )
    assert s["NRestarts"] == "0"  # started by the boot, not by a restart

    def online() -> bool:
        msg = ct.sh(
            "mosquitto_sub -h 127.0.0.1 -t attendance/ct-gw1/status -C 1 -W 10", check=False
        ).stdout.strip()
        return bool(msg) and json.loads(msg)["state"] == "online"

    wait_until(online, 120, "the retained status online after the reboot")


def test_security_score_inside(ct: Container) -> None:
    out = ct.sh(f"systemd-analyze security {UNIT} --no-pager").stdout
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
    assert score, out[-2000:]
    report(f"systemd-analyze security (inside): {score.group(1)} {score.group(2)}")
    assert float(score.group(1)) <= 2.0


def test_execstart_as_shipped(ct: Container) -> None:
    """The unit's own ExecStart= line starts the daemon (no drop-in was needed above).

    Last, so the rest of the lifecycle is checked (with the drop-in) even while it fails.
    """
    assert STATE["execstart_dropin"] is None, (
        "the shipped ExecStart= (`gatewayctl run --config ...`) is rejected by this CLI; "
        f"expected to pass once options-anywhere lands:\n{STATE['execstart_dropin']}"
    )


@pytest.fixture(autouse=True)
def _journal_on_failure(request: pytest.FixtureRequest, ct: Container):  # type: ignore[no-untyped-def]
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and ct.init_pid:
        print(ct.sh(f"journalctl -u {UNIT} -b --no-pager | tail -40", check=False).stdout)
