"""`emu image build|ls|cat|extract|check`."""
from __future__ import annotations

import os

import click
import pytest
from click.testing import CliRunner

from emu.errors import EmuError
from emu.image_cli import image, parse_bytes
from loader.sfs import BLOCK_SIZE, SfsImage
from tests.image.util import assert_one_line_error, emu_image, golden_tree, pattern, snapshot


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    tree = golden_tree(d / "tree")
    img = d / "root.img"
    res = CliRunner().invoke(image, ["build", str(tree), "-o", str(img)])
    assert res.exit_code == 0, res.output
    return tree, img, res.output


def run(*args: str):
    return CliRunner().invoke(image, list(args), catch_exceptions=True)


def test_group_has_the_five_commands():
    assert isinstance(image, click.Group)
    assert sorted(image.commands) == ["build", "cat", "check", "extract", "ls"]


def test_build_summary(built):
    tree, img, out = built
    assert out.startswith(f"{img}: ") and "used; 209 files, 11 directories, 3 symlinks" in out
    with SfsImage(img) as im:
        assert im.sb.unused_blocks == (5 << 20) // BLOCK_SIZE
        assert os.path.getsize(img) == im.sb.blocks * BLOCK_SIZE


def test_ls(built):
    _, img, _ = built
    res = run("ls", str(img))
    assert res.exit_code == 0
    assert res.output.splitlines() == sorted(["L" * 255, "big2060", "bin", "deep", "etc", "grüße-日本",
                                               "lib", "many"], key=str.encode)
    res = run("ls", "-l", str(img), "/bin")
    lines = res.output.splitlines()
    assert lines[0].split() == ["-rwxrwxrwx", "1", str(1036 * 4096 + 100), lines[0].split()[3], "busybox"]
    assert lines[1].startswith("lrwxrwxrwx") and lines[1].endswith("ls -> /bin/busybox")
    assert lines[2].endswith("sh -> busybox")
    res = run("ls", "-la", str(img), "/deep/a")
    assert [ln.split()[-1] for ln in res.output.splitlines()] == [".", "..", "b"]
    assert res.output.splitlines()[0].startswith("drwxrwxrwx   3 ")
    assert run("ls", str(img), "/bin/sh").output == "sh\n"
    assert run("ls", str(img), "/etc/motd").output == "motd\n"


def test_cat(built):
    tree, img, _ = built
    res = CliRunner().invoke(image, ["cat", str(img), "/bin/sh"])
    assert res.exit_code == 0
    assert res.stdout_bytes == (tree / "bin" / "busybox").read_bytes()
    assert run("cat", str(img), "/grüße-日本/€").stdout_bytes == b"euro\n"
    assert run("cat", str(img), "/etc/empty").stdout_bytes == b""


def test_extract_and_check(built, tmp_path):
    tree, img, _ = built
    res = run("extract", str(img), str(tmp_path / "out"))
    assert res.exit_code == 0 and res.output.endswith("entries extracted\n")
    assert snapshot(tmp_path / "out") == snapshot(tree)
    res = run("check", str(img), str(tree))
    assert res.exit_code == 0, res.output
    assert "ok: 209 files, 11 directories, 3 symlinks" in res.output
    assert "212 files and symlinks match" in res.output
    res = run("extract", str(img), str(tmp_path / "out"))  # not empty any more
    assert isinstance(res.exception, EmuError) and "not an empty directory" in str(res.exception)


def test_check_against_a_different_tree(built, tmp_path):
    tree, img, _ = built
    other = golden_tree(tmp_path / "other")
    (other / "etc" / "motd").write_bytes(b"changed motd..\n")
    (other / "bin" / "sh").unlink()
    (other / "bin" / "sh").symlink_to("ls")
    (other / "new").write_bytes(b"")
    (other / "many" / "entry-000-").unlink()
    res = emu_image("check", str(img), str(other))
    assert_one_line_error(res, "check failed with 4 problem(s)")
    out = res.stdout.decode().splitlines()
    assert out == ["problem: /bin/sh: symlink target differs",
                   "problem: /etc/motd: contents differ at byte 0",
                   "problem: /many/entry-000-: in the image, not in " + str(other),
                   "problem: /new: in " + str(other) + ", not in the image"]


def test_build_options_from_the_command_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(pattern(10_000, 3))
    img = tmp_path / "a.img"
    res = emu_image("build", str(src), "-o", str(img), "--size", "1G", "--extra", "0")
    assert res.returncode == 0, res.stderr
    with SfsImage(img) as im:
        assert im.sb.blocks == 262144 and im.sb.freemap_blocks == 8
    res = emu_image("check", str(img), str(src))
    assert res.returncode == 0 and b": ok: 1 files, 1 directories" in res.stdout
    res = emu_image("build", str(src), "-o", str(img), "--extra", "64K")
    with SfsImage(img) as im:
        assert im.sb.unused_blocks == 16
    os.mkfifo(src / "pipe")
    res = emu_image("build", str(src), "-o", str(img))
    assert res.returncode == 0
    assert res.stderr.decode().startswith("emu: warning: ") and "pipe: skipped" in res.stderr.decode()


@pytest.mark.parametrize("args,needle", [
    (["build", "{src}", "-o", "{tmp}/a.img", "--size", "lots"], "not a size"),
    (["build", "{src}", "-o", "{tmp}/a.img", "--extra", "-5M"], "not a size"),
    (["build", "{src}", "-o", "{tmp}/a.img", "--size", "8K", "--extra", "0"], "needs at least"),
    (["build", "{src}"], "Missing option"),
    (["build", "{tmp}/nope", "-o", "{tmp}/a.img"], "No such file"),
    (["build", "{src}/f", "-o", "{tmp}/a.img"], "not a directory"),
    (["build", "{src}", "-o", "{tmp}/no/such/dir/a.img"], "cannot write"),
    (["check", "{tmp}/a.img", "{tmp}/nope"], "not a directory"),
    (["cat", "{img}", "/"], "is a directory"),
    (["cat", "{img}", "/f/x"], "not a directory"),
    (["ls", "{img}", "/missing"], "no such file or directory"),
])
def test_bad_input_is_one_line(tmp_path, args, needle):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(pattern(100_000, 3))
    img = tmp_path / "ok.img"
    assert emu_image("build", str(src), "-o", str(img)).returncode == 0
    fmt = {"src": str(src), "tmp": str(tmp_path), "img": str(img)}
    assert_one_line_error(emu_image(*[a.format(**fmt) for a in args]), needle)


def test_parse_bytes():
    assert parse_bytes("5M", "x") == 5 << 20
    assert parse_bytes("1G", "x") == 1 << 30
    assert parse_bytes("64KiB", "x") == 64 << 10
    assert parse_bytes("4096", "x") == 4096
    assert parse_bytes("1.5M", "x") == 3 << 19
    with pytest.raises(EmuError):
        parse_bytes("", "x")
