"""What a run prints and writes: the summary, the table of changed cases, JUnit XML.

JUnit follows the schema CI tools read (the Jenkins/Surefire junit-10.xsd that pytest
validates its own output against): `<testsuites name tests failures errors time>`
holding one `<testsuite name tests failures errors skipped time timestamp hostname>`,
with `<properties>` and one `<testcase classname name time>` per case.  A case's verdict maps like pytest's xfail:

- the verdict the list expects (OK, or FAILED/TIMEOUT expected and reproduced): OK is a
  plain pass; a reproduced non-OK status is `<skipped type="expected FAILED">`;
- a case expected OK that did not pass: `<failure type="FAILED|TIMEOUT">`;
- expected non-OK, passed now: a plain pass (a "new pass"; the table shows it);
- expected non-OK, another non-OK verdict (e.g. FAILED -> TIMEOUT), or PARTIAL: skipped;
- SKIPPED in the list (not run): `<skipped type="SKIPPED">`.

A PANIC, FAULT-LOOP or HANG (emu's detectors) that matches the list's TIMEOUT (or, for
PANIC, FAILED) counts as that status reproduced: `<skipped type="expected TIMEOUT">`
whose message gives the verdict and its reason.

Times are guest (virtual) seconds: a testcase's `time` is its guest time, a suite's the
sum over its cases; host seconds are in the suite's properties (`host_wall_s`,
`boot_host_s`; `boot_guest_s` too) and, per case, in the first line of `<system-err>`.
Each case's console output goes in its `<system-out>`.
"""
from __future__ import annotations

import datetime
import re
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from emu.errors import EmuError
from emu.testrunner.cases import Status
from emu.testrunner.results import CaseResult, RunOutcome

_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(data: bytes | str) -> str:
    """Text safe for XML 1.0 (control characters other than tab/newline become '?')."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return _XML_BAD.sub("?", text)


def change_kind(r: CaseResult) -> str:
    if r.expected == Status.OK:
        return "new failure"
    if r.status == Status.OK:
        return "new pass"
    if r.expected == Status.PARTIAL:
        return "partial"
    return "changed"


SUMMARY_ORDER = (Status.OK, Status.FAILED, Status.TIMEOUT, Status.PANIC, Status.FAULT_LOOP, Status.HANG,
                 Status.SKIPPED)


def summary_text(outcome: RunOutcome, mode: str) -> str:
    results = outcome.results
    counts = Counter(r.status for r in results)
    ran = [r for r in results if r.ran]
    parts = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in SUMMARY_ORDER
                      if counts.get(s, 0) or not s.detected)
    guest = sum(r.guest_s for r in ran)
    lines = [f"emu test: {len(results)} case(s) in {outcome.wall_s:.2f} s host ({mode}): {parts}"]
    times = f"emu test: guest time: {guest:.2f} s in the cases"
    if outcome.boot_guest_s or outcome.boot_host_s:
        times += f"; boot {outcome.boot_guest_s:.2f} s guest ({outcome.boot_host_s:.2f} s host)"
    lines.append(times)
    if outcome.boot_failed:
        lines.append(f"emu test: boot failed: {outcome.boot_failed}")
    if "no_poweroff" in outcome.extra:
        n = sum(1 for r in ran if r.status == Status.TIMEOUT)
        lines.append(f"emu test: {n} TIMEOUT(s): {outcome.extra['no_poweroff']}")
    stood_in = [r for r in ran if r.status.detected and r.matches]
    if stood_in:
        lines.append(f"{len(stood_in)} case(s) stopped by emu's detectors, as the list records them "
                     "(on QEMU the guest runs on: TIMEOUT, or FAILED if another hart brings the prompt back):")
        w = max(len(r.case.path) for r in stood_in)
        for r in stood_in:
            lines.append(f"  {r.case.path:<{w}}  {r.status.value:<10} = {r.expected.value:<7}  {r.detail}")
    changed = [r for r in ran if r.differs]
    if not changed:
        lines.append(f"all {len(ran)} case(s) run gave the status the list expects")
        return "\n".join(lines)
    w = max(len("CASE"), *(len(r.case.path) for r in changed))
    lines.append(f"{len(changed)} case(s) differ from the list:")
    lines.append(f"  {'CASE':<{w}}  {'EXPECTED':<8}  {'ACTUAL':<10}  {'GUEST S':>7}  CHANGE")
    order = {"new failure": 0, "changed": 1, "partial": 2, "new pass": 3}
    for r in sorted(changed, key=lambda r: order[change_kind(r)]):
        why = f": {r.detail}" if r.detail and r.status != Status.OK else ""
        log = f" [log {r.log_path}]" if r.log_path else ""
        lines.append(f"  {r.case.path:<{w}}  {r.expected.value:<8}  {r.status.value:<10}  {r.guest_s:7.2f}  "
                     f"{change_kind(r)}{why}{log}")
    return "\n".join(lines)


def junit_tree(outcome: RunOutcome, suite: str, properties: dict[str, Any]) -> ET.ElementTree:
    results = outcome.results
    failures = [r for r in results if r.regression]
    skipped = [r for r in results if _skip_reason(r) is not None]
    total_time = sum(r.guest_s for r in results)
    root = ET.Element("testsuites", {
        "name": "emu test", "tests": str(len(results)), "failures": str(len(failures)),
        "errors": "0", "time": f"{total_time:.3f}",
    })
    ts = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(results)), "failures": str(len(failures)), "errors": "0",
        "skipped": str(len(skipped)), "time": f"{total_time:.3f}",
        "timestamp": datetime.datetime.now().replace(microsecond=0).isoformat(),
        "hostname": socket.gethostname() or "localhost",
    })
    props = ET.SubElement(ts, "properties")
    properties = {**properties, "time_unit": "guest (virtual) seconds", "host_wall_s": f"{outcome.wall_s:.3f}",
                  "boot_guest_s": f"{outcome.boot_guest_s:.3f}", "boot_host_s": f"{outcome.boot_host_s:.3f}"}
    for k, v in properties.items():
        ET.SubElement(props, "property", {"name": str(k), "value": xml_text(str(v))})
    for r in results:
        tc = ET.SubElement(ts, "testcase", {"classname": suite, "name": xml_text(r.case.path),
                                            "time": f"{r.guest_s:.3f}"})
        if r.regression:
            msg = f"expected {r.expected.value}, got {r.status.value}" + (f": {r.detail}" if r.detail else "")
            f = ET.SubElement(tc, "failure", {"message": xml_text(msg), "type": r.status.value})
            f.text = xml_text(r.output[-4096:] if r.output else r.detail)
        else:
            why = _skip_reason(r)
            if why is not None:
                ET.SubElement(tc, "skipped", {"message": xml_text(why), "type": f"expected {r.expected.value}"
                                              if r.ran else "SKIPPED"})
        if r.output:
            ET.SubElement(tc, "system-out").text = xml_text(r.output)
        if r.ran:
            head = f"emu test: {r.status.value} after {r.guest_s:.3f} s guest ({r.host_s:.3f} s host)"
            head += f": {r.detail}\n" if r.detail else "\n"
            ET.SubElement(tc, "system-err").text = xml_text(head + r.report)
    ET.indent(root, space=" ")
    return ET.ElementTree(root)


def _skip_reason(r: CaseResult) -> str | None:
    if not r.ran:
        return "SKIPPED in the list: not run"
    if r.regression or r.status == Status.OK:
        return None
    if r.matches:
        return f"expected {r.expected.value}, got {r.status.value}" + (f": {r.detail}" if r.detail else "")
    return f"expected {r.expected.value}, got {r.status.value} (changed)" + (f": {r.detail}" if r.detail else "")


def write_junit(outcome: RunOutcome, path: str | Path, suite: str, properties: dict[str, Any]) -> None:
    tree = junit_tree(outcome, suite, properties)
    try:
        tree.write(str(path), encoding="utf-8", xml_declaration=True)
    except OSError as err:
        raise EmuError(f"cannot write JUnit XML {path}: {err.strerror}") from None
