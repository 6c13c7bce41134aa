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
from emu.testrunner.runner import CaseResult, RunOutcome

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


def summary_text(outcome: RunOutcome, mode: str) -> str:
    results = outcome.results
    counts = Counter(r.status for r in results)
    ran = [r for r in results if r.ran]
    parts = ", ".join(f"{counts.get(s, 0)} {s.value}" for s in (Status.OK, Status.FAILED, Status.TIMEOUT, Status.SKIPPED))
    lines = [f"emu test: {len(results)} case(s) in {outcome.wall_s:.2f} s ({mode}): {parts}"]
    if outcome.boot_failed:
        lines.append(f"emu test: boot failed: {outcome.boot_failed}")
    changed = [r for r in ran if r.differs]
    if not changed:
        lines.append(f"all {len(ran)} case(s) run gave the status the list expects")
        return "\n".join(lines)
    w = max(len("CASE"), *(len(r.case.path) for r in changed))
    lines.append(f"{len(changed)} case(s) differ from the list:")
    lines.append(f"  {'CASE':<{w}}  {'EXPECTED':<8}  {'ACTUAL':<8}  CHANGE")
    order = {"new failure": 0, "changed": 1, "partial": 2, "new pass": 3}
    for r in sorted(changed, key=lambda r: order[change_kind(r)]):
        why = f": {r.detail}" if r.detail and r.status != Status.OK else ""
        log = f" [log {r.log_path}]" if r.log_path else ""
        lines.append(f"  {r.case.path:<{w}}  {r.expected.value:<8}  {r.status.value:<8}  {change_kind(r)}{why}{log}")
    return "\n".join(lines)


def junit_tree(outcome: RunOutcome, suite: str, properties: dict[str, Any]) -> ET.ElementTree:
    results = outcome.results
    failures = [r for r in results if r.regression]
    skipped = [r for r in results if _skip_reason(r) is not None]
    total_time = sum(r.host_s for r in results)
    root = ET.Element("testsuites", {
        "name": "emu test", "tests": str(len(results)), "failures": str(len(failures)),
        "errors": "0", "time": f"{outcome.wall_s:.3f}",
    })
    ts = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(results)), "failures": str(len(failures)), "errors": "0",
        "skipped": str(len(skipped)), "time": f"{total_time:.3f}",
        "timestamp": datetime.datetime.now().replace(microsecond=0).isoformat(),
        "hostname": socket.gethostname() or "localhost",
    })
    props = ET.SubElement(ts, "properties")
    for k, v in properties.items():
        ET.SubElement(props, "property", {"name": str(k), "value": xml_text(str(v))})
    for r in results:
        tc = ET.SubElement(ts, "testcase", {"classname": suite, "name": xml_text(r.case.path),
                                            "time": f"{r.host_s:.3f}"})
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
        if r.report:
            ET.SubElement(tc, "system-err").text = xml_text(r.report)
    ET.indent(root, space=" ")
    return ET.ElementTree(root)


def _skip_reason(r: CaseResult) -> str | None:
    if not r.ran:
        return "SKIPPED in the list: not run"
    if r.regression or r.status == Status.OK:
        return None
    if r.status == r.expected:
        return f"expected {r.expected.value}, got {r.status.value}" + (f": {r.detail}" if r.detail else "")
    return f"expected {r.expected.value}, got {r.status.value} (changed)" + (f": {r.detail}" if r.detail else "")


def write_junit(outcome: RunOutcome, path: str | Path, suite: str, properties: dict[str, Any]) -> None:
    tree = junit_tree(outcome, suite, properties)
    try:
        tree.write(str(path), encoding="utf-8", xml_declaration=True)
    except OSError as err:
        raise EmuError(f"cannot write JUnit XML {path}: {err.strerror}") from None
