"""The SIPp working directory the scenarios expect: the XML files next to a pcap/ folder
with the RTP recordings they replay, generated here (nothing binary is committed)."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

from tests.integration.harness import PEERS


def speech_like_wav(path: Path, seconds: float = 3.6) -> Path:
    """A voice-band signal that changes like speech does (gliding harmonics, syllables)."""
    rate = 8000
    frames = bytearray()
    for i in range(int(rate * seconds)):
        t = i / rate
        f0 = 140 + 40 * math.sin(2 * math.pi * 0.7 * t)
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 3.0 * t)
        v = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in (1, 2, 3, 5))
        frames += struct.pack("<h", int(6000 * envelope * v))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def make_sipp_dir(dest: Path) -> Path:
    """Copy the scenarios and build the pcaps they replay; returns the directory."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in (PEERS / "sipp").glob("*.xml"):
        shutil.copy(f, dest / f.name)
    shutil.copytree(PEERS / "sipp" / "templates", dest / "templates", dirs_exist_ok=True)
    shutil.copy(PEERS / "sipp" / "gen.sh", dest / "gen.sh")
    pcap = dest / "pcap"
    pcap.mkdir(exist_ok=True)
    speech = speech_like_wav(dest / "speech.wav")
    tool = PEERS / "tools" / "make_rtp_pcap.py"
    jobs = {
        "caller-speech-pcmu.pcap": ["--wav", str(speech)],
        "caller-speech-then-dtmf-1-2-hash-pcmu.pcap": ["--wav", str(speech), "--dtmf", "12#"],
        "dtmf-9-pcmu.pcap": ["--silence", "3", "--dtmf", "9"],
        "dtmf-1-pcmu.pcap": ["--silence", "1", "--dtmf", "1"],
        "dtmf-2-pcmu.pcap": ["--silence", "1", "--dtmf", "2"],
    }
    for name, args in jobs.items():
        subprocess.run([sys.executable, str(tool), str(pcap / name), *args], check=True,
                       capture_output=True)
    return dest
