import contextlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
UBOOT = Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")


def emu_cmd(*args: str) -> list[str]:
    """The emu command line as a user types it (same interpreter as the tests)."""
    return [sys.executable, "-m", "emu", *args]


LINUX_BUILD = ROOT / "images" / "build" / "linux"


def build_linux(arch: str = "riscv64") -> tuple[Path, Path]:
    """The Linux guest (Image or bzImage, initramfs), built by images/linux (a no-op when
    current); the test is skipped, saying why, without the compiler it needs."""
    if arch == "x86_64":
        import platform

        if platform.machine() != "x86_64" or shutil.which("gcc") is None:
            pytest.skip("the x86_64 Linux guest is built with the host's gcc on an x86_64 host")
        res = subprocess.run(["make", "-C", str(ROOT / "images" / "linux"), "ARCH=x86_64"], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        out = ROOT / "images" / "build" / "linux-x86_64"
        return out / "bzImage", out / "initramfs.cpio.gz"
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc missing: scripts/setup.sh installs it")
    res = subprocess.run(["make", "-C", str(ROOT / "images" / "linux")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return LINUX_BUILD / "Image", LINUX_BUILD / "initramfs.cpio.gz"


@contextlib.contextmanager
def web_server(root: Path) -> Iterator[tuple[int, Callable[[], None]]]:
    """An HTTP server for `root` on the host's loopback (a guest reaches it as 10.0.2.2
    through slirp): its port, and a stop function (also called on the way out)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = [True]

    def stop() -> None:
        if running and running.pop():
            server.shutdown()
            server.server_close()
    try:
        yield server.server_address[1], stop
    finally:
        stop()


def marked_disk(path: Path, magic: bytes) -> Path:
    """A 1 MiB raw disk image, zero but for `magic` at the start of sector 1 (what the
    U-Boot tests read back)."""
    data = bytearray(1 << 20)
    data[512:512 + len(magic)] = magic
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def uboot() -> Path:
    if not UBOOT.exists():
        pytest.skip("Debian's U-Boot is missing: apt-get install u-boot-qemu")
    return UBOOT


@pytest.fixture(scope="session")
def refguest_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference guest, built once per session into a temporary directory (never into
    the shared images/build)."""
    missing = [t for t in ("riscv64-unknown-elf-gcc", "make") if shutil.which(t) is None]
    if missing:
        reason = (f"reference-guest tests SKIPPED: {' and '.join(missing)} not found "
                  "(apt-get install gcc-riscv64-unknown-elf make)")
        warnings.warn(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("refguest") / "build"
    res = subprocess.run(["make", "-C", str(ROOT / "images" / "refguest"), f"OUT={out}", "all"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"building the reference guest failed:\n{res.stdout}{res.stderr}"
    return out / "refguest.elf"
