"""Record and replay (emu/record.py): a run typed at irregular host times is replayed with the
same console and trace, byte for byte, and a replay that does not follow its recording stops
at the first divergence."""
from __future__ import annotations

import io
import json
import random
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from emu.errors import EXIT_BAD_INPUT, EXIT_REPLAY_DIVERGED
from tests.conftest import build_linux, emu_cmd, web_server
from tests.rootfs.conftest import IMAGE, INITRD, rootfs  # noqa: F401 - the fixture



def typed_run(cmd: list[str], prompt: str, lines: list[str], seed: int, end: str = "poweroff") -> bytes:
    """Run `cmd` on a terminal and type `lines` character by character at irregular host
    times (the delays vary the host timing the recording must capture; every wait for the
    guest is an expect)."""
    rnd = random.Random(seed)
    out = io.BytesIO()
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=120)
    child.logfile_read = out
    try:
        child.expect(prompt)
        for line in lines:
            for ch in line + "\r":
                child.send(ch)
                time.sleep(rnd.uniform(0, 0.02))
            child.expect(prompt)
        child.sendline(end)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, out.getvalue()[-2000:]
    return out.getvalue()


def replay(base: list[str], rec: Path, trace: Path) -> subprocess.CompletedProcess:
    return subprocess.run(emu_cmd(*base, "--replay", str(rec), "--trace", str(trace)), capture_output=True, timeout=300)


def check_three_replays(base: list[str], rec: Path, recorded_console: bytes, recorded_trace: Path,
                        tmp_path: Path) -> list[str]:
    events = [json.loads(line)["kind"] for line in rec.read_text().splitlines()[1:]]
    assert events.count("input") >= 10 and "idle" in events, events  # typed input and terminal idle time
    for i in range(3):
        r = replay(base, rec, tmp_path / f"replay{i}.json")
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        assert r.stdout == recorded_console, f"replay {i}: console differs"
        assert (tmp_path / f"replay{i}.json").read_bytes() == recorded_trace.read_bytes(), f"replay {i}: trace differs"
    return events


def test_a_typed_refguest_run_replays_byte_for_byte(refguest_elf, tmp_path) -> None:
    base = ["run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi", "--timeout", "120"]
    rec, trace = tmp_path / "run.rec", tmp_path / "run.json"
    console = typed_run(emu_cmd(*base, "--record", str(rec), "--trace", str(trace)), "ref> ",
                        ["echo one two", "bench 20", "sleep 20", "echo three"], seed=1)
    check_three_replays(base, rec, console, trace, tmp_path)


def test_a_typed_linux_run_replays_byte_for_byte(tmp_path) -> None:
    image, initrd = build_linux()
    base = ["run", "--smp", "2", "-m", "256M", "--kernel", str(image), "--initrd", str(initrd),
            "--append", "console=ttyS0", "--timeout", "240"]
    rec, trace = tmp_path / "run.rec", tmp_path / "run.json"
    console = typed_run(emu_cmd(*base, "--record", str(rec), "--trace", str(trace)), "linux> ",
                        ["echo hello", "stress 20000", "echo again"], seed=2)
    check_three_replays(base, rec, console, trace, tmp_path)


@pytest.fixture
def host_web_server(tmp_path):
    """A host web server and a function that stops it (a replay must not need it)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.txt").write_text("served by the host\n")
    with web_server(root) as server:
        yield server


def test_a_networked_linux_run_replays_without_the_network(rootfs, host_web_server, tmp_path) -> None:
    """virtio-net under Linux: DHCP and ping answered by slirp (some at once, inside the
    guest's transmit write) and a TCP fetch from a host server; replayed three times with the
    server gone.  (The Linux guest has no PCI: e1000 is tested with zCore, tests/zcore.)"""
    port, stop_server = host_web_server
    base = ["run", "--smp", "2", "-m", "256M", "--kernel", str(IMAGE), "--initrd", str(INITRD),
            "--net", "user", "--timeout", "240"]
    rec, trace = tmp_path / "run.rec", tmp_path / "run.json"
    console = typed_run(emu_cmd(*base, "--record", str(rec), "--trace", str(trace)), "/ # ",
                        ["udhcpc -i eth0 -n -q -t 5", "ping -c 2 10.0.2.2", f"wget -O - http://10.0.2.2:{port}/index.txt"],
                        seed=3, end="poweroff -f")
    assert b"lease of 10.0.2.15 obtained" in console and b"served by the host" in console, console[-2000:]
    stop_server()
    events = [json.loads(line) for line in rec.read_text().splitlines()[1:]]
    rx = [ev for ev in events if ev["kind"] == "rx"]
    assert any("hart" in ev for ev in rx), rx[:3]  # slirp's DHCP answers come inside the transmit write
    check_three_replays(base, rec, console, trace, tmp_path)
    # what the guest sends is checked: a recording whose guest had sent other frames diverges
    first = next(i for i, ev in enumerate(events) if ev["kind"] == "rx")
    events[first]["tx_hash"] = "0" * 16
    rec.write_text("\n".join([rec.read_text().splitlines()[0], *map(json.dumps, events)]) + "\n")
    r = replay(base, rec, tmp_path / "bad.json")
    assert r.returncode == EXIT_REPLAY_DIVERGED and b"the guest has sent" in r.stderr, r.stderr[-2000:]


def piped_recording(refguest_elf: Path, rec: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    """A recorded run of the reference guest from piped input: its command line and result."""
    base = ["run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi", "--timeout", "120"]
    r = subprocess.run(emu_cmd(*base, "--record", str(rec)), input=b"echo x\npoweroff\n", capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return base, r


def test_a_replay_that_does_not_follow_its_recording_stops_at_the_divergence(refguest_elf, tmp_path) -> None:
    rec = tmp_path / "run.rec"
    base, _ = piped_recording(refguest_elf, rec)
    lines = rec.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if json.loads(line).get("kind") == "input")
    ev = json.loads(lines[i])
    ev["bytes"] += 4  # as if the guest had run one more instruction before taking this byte
    lines[i] = json.dumps(ev)
    rec.write_text("\n".join(lines) + "\n")
    r = subprocess.run(emu_cmd(*base, "--replay", str(rec)), capture_output=True, timeout=120)
    assert r.returncode == EXIT_REPLAY_DIVERGED, r.stderr.decode()
    assert f"replay diverged at the input event #{i}" in r.stderr.decode()


def test_a_recording_of_another_kernel_or_no_recording_is_bad_input(refguest_elf, tmp_path) -> None:
    rec = tmp_path / "run.rec"
    rec.write_text(json.dumps({"format": "emu-record", "version": 1, "kernel": "0" * 64}) + "\n")
    r = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--replay", str(rec)), capture_output=True,
                       timeout=60)
    assert r.returncode == EXIT_BAD_INPUT and b"recorded with kernel" in r.stderr, r.stderr
    r = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--replay", str(tmp_path / "none")),
                       capture_output=True, timeout=60)
    assert r.returncode == EXIT_BAD_INPUT and r.stderr.count(b"\n") == 1, r.stderr


def test_a_version_1_recording_still_replays(refguest_elf, tmp_path) -> None:
    rec = tmp_path / "run.rec"
    base, r = piped_recording(refguest_elf, rec)
    head, *events = rec.read_text().splitlines()
    header = json.loads(head)
    assert header["version"] == 2
    header = {k: v for k, v in header.items() if k not in ("arch", "net", "nic")} | {"version": 1}
    rec.write_text("\n".join([json.dumps(header), *events]) + "\n")
    again = subprocess.run(emu_cmd(*base, "--replay", str(rec)), capture_output=True, timeout=120)
    assert again.returncode == 0 and again.stdout == r.stdout, again.stderr.decode()


def test_a_typed_x86_64_linux_run_replays_byte_for_byte(tmp_path) -> None:
    image, initrd = build_linux("x86_64")
    base = ["run", "--arch", "x86_64", "--smp", "2", "-m", "256M", "--kernel", str(image), "--initrd", str(initrd),
            "--append", "console=ttyS0", "--timeout", "240"]
    rec, trace = tmp_path / "run.rec", tmp_path / "run.json"
    console = typed_run(emu_cmd(*base, "--record", str(rec), "--trace", str(trace)), "linux> ",
                        ["echo hello", "stress 20000", "echo again"], seed=5)
    check_three_replays(base, rec, console, trace, tmp_path)
