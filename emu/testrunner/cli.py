"""`emu test`: run a zcore-tests list on the console, one fork of the booted machine per case.

Registered in emu/cli.py with `main.add_command(test)`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from emu.errors import EmuError
from emu.testrunner.cases import Case, Status, parse_list, update_list
from emu.testrunner.verdict import DEFAULT_FAIL_PATTERNS, DEFAULT_PROMPT


@click.command("test")
@click.option("--arch", default="riscv64", show_default=True,
              help="Guest architecture, as `emu run --arch`: riscv64 (virt board) or x86_64 (pc board).")
@click.option("--kernel", "-kernel", "kernel", envvar="EMU_ZCORE_KERNEL", default=None,
              help="Kernel (ELF or raw image); default $EMU_ZCORE_KERNEL.")
@click.option("--initrd", "-initrd", "initrd", envvar="EMU_ZCORE_INITRD", default=None,
              help="Initial ramdisk / rootfs; default $EMU_ZCORE_INITRD.")
@click.option("--append", "-append", "append", default=None, help="Kernel command line (bootargs).")
@click.option("--linux", is_flag=True, help="zCore Linux-mode defaults, as `emu run --linux`: bootargs LOG=warn "
              "unless --append.")
@click.option("--list", "list_file", default=None, help="Test list (zcore-tests format: PATH STATUS per line).")
@click.option("--case", "case_paths", multiple=True,
              help="Run only this case (repeatable); a path not in the list is run expecting OK.")
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=True, help="Regular expression of the shell prompt.")
@click.option("--jobs", "-j", "jobs", default=1, type=int, show_default=True,
              help="Cases run at once (forked children); 0 = one per CPU.")
@click.option("--timeout", default=10.0, type=float, show_default=True, help="Guest seconds per case.")
@click.option("--host-timeout", "host_timeout", default=None, type=float,
              help="Host-time guard per case in seconds [default: max(60, 10 x --timeout)].")
@click.option("--boot-timeout", "boot_timeout", default=60.0, type=float, show_default=True,
              help="Guest seconds to reach the first prompt.")
@click.option("--junit", "junit", default=None, help="Write JUnit XML here.")
@click.option("--trace-failed", "trace_failed", default=None,
              help="Directory for the console log (and trace) of every case that does not pass.")
@click.option("--no-trace", "no_trace", is_flag=True, help="With --trace-failed: console logs only, no traces.")
@click.option("--smp", "-smp", "smp", default=1, type=int, show_default=True, help="Number of harts.")
@click.option("-m", "--memory", "memory", default="2G", show_default=True, help="RAM size, e.g. 512M, 2G.")
@click.option("--update-list", "update", is_flag=True, help="Rewrite the list's statuses with this run's verdicts.")
@click.option("--boot-per-case", "boot_per_case", is_flag=True,
              help="Boot a fresh machine per case instead of forking one booted machine.")
@click.option("--case-via", "case_via", type=click.Choice(["bootargs", "console"]), default=None,
              help="How a case reaches the guest: bootargs (with --boot-per-case, the default there) "
                   "or console (typed on the shell; the default otherwise).")
@click.option("--boot-append-template", "template", default="ROOTPROC={case}", show_default=True,
              help="With --case-via bootargs: bootargs added to --append (':'-joined); "
                   "{case} = the list path, {argv} = its words joined by spaces, {append} = --append.")
@click.option("--fail-pattern", "fail_patterns", multiple=True,
              help="Another output substring that makes a case FAILED (repeatable).")
@click.option("--no-default-patterns", "no_defaults", is_flag=True,
              help=f"Drop the default failure patterns ({', '.join(DEFAULT_FAIL_PATTERNS)}).")
@click.option("--quantum", type=int, default=20_000, show_default=True, help="Instructions per hart per round.")
@click.option("--net", "net", default=None,
              help="A NIC on this backend, as `emu run --net`: user[,hostfwd=...] | tap,ifname=NAME | none.")
@click.option("--nic", "nic", type=click.Choice(["virtio", "e1000", "e1000e"]), default="virtio", show_default=True,
              help="The NIC model behind --net (e1000 / e1000e: on the PCI host, as zCore's Makefile adds).")
def test(arch: str, kernel: str | None, initrd: str | None, append: str | None, linux: bool, list_file: str | None, case_paths: tuple[str, ...],
         prompt: str, jobs: int, timeout: float, host_timeout: float | None, boot_timeout: float,
         junit: str | None, trace_failed: str | None, no_trace: bool, smp: int, memory: str, update: bool,
         boot_per_case: bool, case_via: str | None, template: str, fail_patterns: tuple[str, ...],
         no_defaults: bool, quantum: int, net: str | None = None, nic: str = "virtio") -> None:
    """Run a test list on the console: boot once, then fork the machine per case.

    Verdicts follow zcore-tests: FAILED when the output holds a failure pattern,
    TIMEOUT after --timeout guest seconds, otherwise OK; PANIC, FAULT-LOOP and HANG when
    emu's detectors stopped the guest (they match a TIMEOUT in a list recorded on QEMU).
    Exit status 1 when a case the list expects OK did not pass, 2 on bad input.
    """
    from emu.board import MAX_HARTS, PC_RAM_MAX, GiB, MiB
    from emu.cli import ARCHES, LINUX_DEFAULT_BOOTARGS, check_nic, parse_size
    from emu.testrunner.report import summary_text, write_junit
    from emu.testrunner.runner import RunConfig, Runner

    if arch not in ARCHES:
        raise EmuError(f"--arch {arch}: must be one of {', '.join(ARCHES)}")
    if kernel is None:
        raise EmuError("no --kernel given (nor EMU_ZCORE_KERNEL)")
    if append is None:
        append = LINUX_DEFAULT_BOOTARGS if linux else ""
    if list_file is None and not case_paths:
        raise EmuError("give --list FILE, or at least one --case PATH")
    if update and list_file is None:
        raise EmuError("--update-list needs --list")
    if not 1 <= smp <= MAX_HARTS:
        raise EmuError(f"--smp {smp}: must be between 1 and {MAX_HARTS}")
    ram_size = parse_size(memory)
    if arch == "x86_64" and ram_size > PC_RAM_MAX:
        raise EmuError(f"-m {memory}: the x86_64 board has at most {PC_RAM_MAX >> 20}M of RAM so far")
    if arch == "x86_64" and net is not None:
        raise EmuError("--net: not supported with --arch x86_64 yet")
    if ram_size < 16 * MiB or ram_size > 16 * GiB:
        raise EmuError(f"-m {memory}: RAM must be between 16M and 16G")
    if quantum < 100:
        raise EmuError(f"--quantum {quantum}: must be at least 100 instructions")
    if boot_timeout <= 0:
        raise EmuError(f"--boot-timeout {boot_timeout:g}: must be positive")
    check_nic(nic, net)

    cases = parse_list(list_file) if list_file is not None else []
    if list_file is not None and not cases:
        raise EmuError(f"{list_file}: no cases in the list")
    if case_paths:
        by_path = {c.path: c for c in cases}
        chosen: list[Case] = []
        for p in dict.fromkeys(case_paths):
            chosen.append(by_path[p] if p in by_path else Case(p, None))
        cases = [Case(c.path, Status.OK if c.expected == Status.SKIPPED else c.expected, c.line) for c in chosen]

    patterns = () if no_defaults else DEFAULT_FAIL_PATTERNS
    config = RunConfig(
        kernel=kernel, arch=arch, initrd=initrd, append=append, smp=smp, ram_size=ram_size, prompt=prompt,
        timeout=timeout, host_timeout=host_timeout, boot_timeout=boot_timeout, jobs=jobs,
        fail_patterns=tuple(patterns) + tuple(fail_patterns), boot_per_case=boot_per_case,
        case_via=case_via, boot_append_template=template, trace_failed=trace_failed, trace=not no_trace,
        quantum=quantum, progress=sys.stderr, net=net, nic=nic,
    )
    if not config.patterns:
        raise EmuError("no failure patterns left (--no-default-patterns without --fail-pattern)")
    outcome = Runner(config, cases).run()

    mode = ("boot per case, case via " + str(config.case_via)) if boot_per_case else "fork per case"
    mode += f", {config.job_count} job(s)"
    click.echo(summary_text(outcome, mode))
    if junit is not None:
        suite = Path(list_file).stem if list_file else "emu-test"
        props = {"arch": arch, "kernel": kernel, "initrd": initrd or "", "bootargs": append, "list": list_file or "",
                 "mode": mode, "timeout_guest_s": timeout, "smp": smp, "memory": memory}
        write_junit(outcome, junit, suite, props)
    if update and outcome.boot_failed:
        click.echo(f"emu test: {list_file} left as it was: the boot failed", err=True)
    elif update:
        assert list_file is not None
        new = {r.case.path: r.list_status for r in outcome.results if r.ran and r.case.line}
        changed = update_list(list_file, new)
        click.echo(f"emu test: {list_file}: {changed} status(es) updated")
    sys.exit(outcome.exit_status)
