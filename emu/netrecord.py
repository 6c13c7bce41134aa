"""Network frames in a recording (`--record` / `--replay` with `--net`; emu/record.py).

A NIC model (virtio-net, e1000) takes frames for the guest from its backend's `poll()`,
either between rounds or, for answers the backend gives at once (slirp's ARP and ICMP),
inside the guest's transmit MMIO write.  Both are the only ways host frames reach the
guest, so the NIC's backend is wrapped:

- recording (`RecordingBackend`): the real backend (slirp, TAP) runs; every non-empty
  `poll()` is written as an `rx` event with where the NIC took the frames: between rounds
  (the run's position) or inside a hart's MMIO write (also the hart and the code bytes of
  its turn, which name the write exactly);
- replay (`ReplayBackend`): no backend is started (no slirp, no sockets, no TAP, no
  hostfwd port is bound), so the replay needs no host service and slirp's timers and
  host clock cannot reach the guest; `poll()` answers from the recording when the next
  event is an `rx` of this NIC due exactly here, otherwise nothing.

Frames the guest sends are not sent anywhere on replay; they are counted and hashed
(SHA-256, chained) in both runs, and every `rx` event carries the count and hash of the
frames sent before it, so a replay whose guest sent something else stops at the next
received frame (exit 119) instead of going on with answers to other questions.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from emu.devices.virtio.net import NetBackend
    from emu.record import Recorder, Replayer, RxPlace


class TxDigest:
    """The frames the guest has sent: how many, and a hash chained over them."""

    def __init__(self) -> None:
        self.count = 0
        self._hash = hashlib.sha256()

    def add(self, frame: bytes) -> None:
        self.count += 1
        self._hash.update(len(frame).to_bytes(4, "little") + frame)

    @property
    def digest(self) -> str:
        return self._hash.copy().hexdigest()[:16]


class RecordingBackend:
    """The real backend, with every frame it hands the guest written to the recording."""

    def __init__(self, inner: "NetBackend", nic: str, recorder: "Recorder",
                 place: Callable[[], "RxPlace"]) -> None:
        self.inner = inner
        self.nic = nic
        self.recorder = recorder
        self.place = place  # where the run is (between rounds, or in a hart's MMIO write)
        self.tx = TxDigest()

    def send(self, frame: bytes) -> None:
        self.tx.add(frame)
        self.inner.send(frame)

    def poll(self) -> list[bytes]:
        frames = self.inner.poll()
        if frames:
            self.recorder.rx(self.place(), self.nic, frames, self.tx.count, self.tx.digest)
        return frames

    def wait_fds(self) -> list[int]:
        return self.inner.wait_fds()

    def close(self) -> None:
        self.inner.close()


class ReplayBackend:
    """No host network: the frames come from the recording, at the places they were taken."""

    def __init__(self, nic: str, replayer: "Replayer", place: Callable[[], "RxPlace"]) -> None:
        self.nic = nic
        self.replayer = replayer
        self.place = place
        self.tx = TxDigest()

    def send(self, frame: bytes) -> None:
        self.tx.add(frame)

    def poll(self) -> list[bytes]:
        return self.replayer.rx(self.place(), self.nic, self.tx.count, self.tx.digest)

    def wait_fds(self) -> list[int]:
        return []

    def close(self) -> None:
        pass
