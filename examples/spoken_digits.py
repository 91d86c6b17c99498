"""A spoken-digit dataset ("zero" … "nine") made offline with espeak-ng, one class folder per digit and one
speaker (voice) per file-name field, so tests and benchmarks can check short clips and held-out speakers."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

RATE = 22050  # espeak-ng's own output rate: no resampling, so the files are exactly what it wrote plus noise
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GROUP_REGEX = r"_([^_]+)_"  # `run_search.py --group` pattern that picks the voice out of `{digit}_{voice}_{take}.wav`

# espeak-ng's built-in English accents (gmw voices; the mbrola ones need mbrola, not installed). The British one
# is named "en", not "en-gb": espeak-ng 1.51 silently ignores a variant after "en-gb" ("en-gb+f3" sounds
# like plain "en-gb"), while "en+f3" is the same accent with the variant applied.
ACCENTS = {
    "gb": "en",
    "us": "en-us",
    "nyc": "en-us-nyc",
    "scot": "en-gb-scotland",
    "lanc": "en-gb-x-gbclan",
    "rp": "en-gb-x-rp",
    "wmid": "en-gb-x-gbcwmd",
    "carib": "en-029",
}
# Per accent two female and two male variants (`espeak-ng --voices=variant`), each variant used once, so no
# two voices share an accent and a variant. Whispering, robotic and novelty variants are left out.
VARIANTS = {
    "gb": (("f1", "Annie"), ("m1", "klatt")),
    "us": (("f2", "Andrea"), ("m2", "klatt2")),
    "nyc": (("f3", "belinda"), ("m3", "klatt3")),
    "scot": (("f4", "steph"), ("m4", "croak")),
    "lanc": (("f5", "anika"), ("m6", "Andy")),
    "rp": (("aunty", "Alicia"), ("m7", "grandpa")),
    "wmid": (("grandma", "shelby"), ("m8", "Michael")),
    "carib": (("linda", "steph3"), ("klatt4", "Gene")),
}


@dataclass(frozen=True)
class Clip:
    digit: int
    voice: str  # the id in file names, e.g. "rp-aunty"; espeak_voice() gives espeak-ng's name
    take: int

    @property
    def relative_path(self) -> Path:
        return Path(WORDS[self.digit]) / f"{self.digit}_{self.voice}_{self.take}.wav"


class EspeakMissing(RuntimeError):
    """espeak-ng is not on PATH."""


def espeak_voice(voice: str) -> str:
    """espeak-ng's name for a voice id: "rp-aunty" -> "en-gb-x-rp+aunty"."""
    tag, variant = voice.split("-", 1)
    names = {name.lower(): name for pair in VARIANTS[tag] for name in pair}  # ids are lower case, files not
    return f"{ACCENTS[tag]}+{names[variant]}"


def all_voices() -> list[str]:
    """Every voice id (accent tag, a hyphen, the variant in lower case: no underscore, so GROUP_REGEX works)."""
    return [f"{tag}-{name.lower()}" for tag, pairs in VARIANTS.items() for pair in pairs for name in pair]


def voice_order(seed: int) -> list[str]:
    """All voices in a seeded order whose every prefix spreads over accents and genders: one voice of each
    accent (the accents shuffled once) per round, each accent alternating female and male, half the
    accents starting female. The first 8 cover every accent, the first 12 are 6 female and 6 male."""
    rng = random.Random(f"voices/{seed}")
    tags = list(ACCENTS)
    rng.shuffle(tags)
    per_accent = []
    for i, tag in enumerate(tags):
        female, male = (rng.sample(pair, len(pair)) for pair in VARIANTS[tag])
        first, second = (female, male) if i % 2 == 0 else (male, female)
        per_accent.append([f"{tag}-{name.lower()}" for a, b in zip(first, second) for name in (a, b)])
    return [voices[r] for r in range(len(per_accent[0])) for voices in per_accent]


def find_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakMissing("espeak-ng is not on PATH: install the Debian package (apt-get install espeak-ng)")
    return path


def speak(espeak: str, path: Path, voice: str, word: str, speed: int = 175, pitch: int = 50, amplitude: int = 100):
    """Have espeak-ng write `word` to `path`; a failure raises with espeak-ng's own message."""
    command = [espeak, "-w", str(path), "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude), word]
    done = subprocess.run(command, capture_output=True, text=True)
    size = path.stat().st_size if path.is_file() else 0
    if done.returncode != 0 or size <= 44:  # 44 bytes: a WAV header and no audio
        detail = done.stderr.strip() or f"exit status {done.returncode}, {size} bytes"
        raise RuntimeError(f"espeak-ng voice {voice!r} failed on {word!r}: {detail}")


def check_voices(espeak: str, voices: list[str], scratch: Path) -> None:
    """Each voice must speak, and sound unlike its plain accent and unlike every other voice: espeak-ng
    exits 0 and falls back to the plain accent for a variant it ignores (see ACCENTS), which would make
    two "speakers" one."""

    def heard(name: str) -> bytes:
        speak(espeak, scratch / "probe.wav", name, "seven")
        return hashlib.sha256((scratch / "probe.wav").read_bytes()).digest()

    plain = {accent: heard(accent) for accent in sorted({espeak_voice(v).split("+")[0] for v in voices})}
    seen: dict[bytes, str] = {}
    for voice in voices:
        name = espeak_voice(voice)
        digest = heard(name)
        if digest == plain[name.split("+")[0]] or digest in seen:
            other = seen.get(digest, name.split("+")[0])
            raise RuntimeError(f"espeak-ng voice {name!r} sounds exactly like {other!r}: its variant is ignored")
        seen[digest] = name


def take_settings(seed: int, clip: Clip, per_voice: bool = False) -> tuple[int, int, int, float, int]:
    """(speed in words per minute, pitch 0-99, amplitude, noise level in dBFS, noise seed), drawn from the
    clip alone: a smaller build (fewer voices or takes) makes a subset of the same files, byte for byte.
    `per_voice`: each voice speaks at a tempo of its own (within 8%), as people do, so that voices
    never heard in training are also faster or slower than those that were."""
    rng = random.Random(f"{seed}/{clip.voice}/{clip.digit}/{clip.take}")  # str seeds are hashed stably
    # Mostly brisk, sometimes slow, as people read digits: clips of about 0.25-1.5 s, median about 0.55 s
    # (espeak-ng's trailing pause shrinks with speed, so speed sets the whole clip length).
    speed = round(rng.triangular(110, 280, 220))
    if per_voice:
        speed = round(random.Random(f"{seed}/{clip.voice}").uniform(110, 280) * rng.uniform(0.92, 1.08))
    # Amplitude at most 60 of espeak-ng's 0-200: at its default 100 some voices (steph3, klatt4, Gene) already
    # reach full scale and clip; at 60 the loudest peaks at about 0.86 of full scale.
    amplitude = rng.randint(20, 60)
    return speed, rng.randint(25, 75), amplitude, rng.uniform(-85, -65), rng.getrandbits(63)


def render(espeak: str, out_dir: Path, clip: Clip, seed: int, per_voice: bool = False) -> float:
    """Write one clip and return its duration in seconds."""
    speed, pitch, amplitude, noise_dbfs, noise_seed = take_settings(seed, clip, per_voice)
    final = out_dir / clip.relative_path
    part = final.with_name(final.name + ".part")  # an interrupted build leaves no truncated .wav behind
    speak(espeak, part, espeak_voice(clip.voice), WORDS[clip.digit], speed, pitch, amplitude)
    with wave.open(str(part), "rb") as source:
        if (source.getnchannels(), source.getsampwidth(), source.getframerate()) != (1, 2, RATE):
            raise RuntimeError(f"{part}: espeak-ng wrote {source.getparams()}, expected 16-bit mono at {RATE} Hz")
        samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    # espeak-ng's silences are digital zeros, which no microphone records: a model could learn where the
    # word starts from exact zeros, and log spectrograms of zeros hit their floor. A faint noise floor
    # (-85 to -65 dBFS: in the default set a median 50 dB under the word, 27 dB at the least) makes the
    # silences like a quiet room's.
    noise = np.random.default_rng(noise_seed).normal(0.0, 32768 * 10 ** (noise_dbfs / 20), samples.size)
    audio = np.clip(np.round(samples + noise), -32768, 32767).astype("<i2")
    with wave.open(str(part), "wb") as target:  # the stdlib writes a plain 44-byte header: same bytes every run
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(RATE)
        target.writeframes(audio.tobytes())
    os.replace(part, final)
    return samples.size / RATE


def make_spoken_digits(
    out_dir: Path | str,
    voices: int = 12,
    takes: int = 20,
    seed: int = 0,
    progress: bool = False,
    tempo_per_voice: bool = False,
) -> dict[Path, float]:
    """Build the dataset in `out_dir` (new or empty): 10 digits x `voices` x `takes` clips. Returns each
    clip's path and duration in seconds, in path order. `tempo_per_voice`: see `take_settings`."""
    espeak = find_espeak()
    out_dir = Path(out_dir)
    count = len(all_voices())
    if not 1 <= voices <= count or takes < 1:
        raise ValueError(f"voices must be 1 to {count} and takes at least 1 (got {voices} and {takes})")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: build into a new folder (files of another build would mix in)")
    chosen = voice_order(seed)[:voices]
    with tempfile.TemporaryDirectory() as scratch:
        check_voices(espeak, chosen, Path(scratch))
    for word in WORDS:
        (out_dir / word).mkdir(parents=True, exist_ok=True)
    clips = [Clip(digit, voice, take) for voice in chosen for digit in range(10) for take in range(takes)]
    return dict(sorted(_render_all(espeak, out_dir, clips, seed, progress, tempo_per_voice)))


def _render_all(
    espeak: str, out_dir: Path, clips: list[Clip], seed: int, progress: bool, per_voice: bool
) -> list[tuple]:
    # Threads suffice: each clip is an espeak-ng process, and numpy releases the GIL for the noise.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {pool.submit(render, espeak, out_dir, clip, seed, per_voice): clip for clip in clips}
        try:
            bar = tqdm(as_completed(futures), total=len(futures), unit="clip", disable=not progress)
            return [(out_dir / futures[future].relative_path, future.result()) for future in bar]
        except BaseException:  # a failed clip or Ctrl-C: stop now, not after the thousands still queued
            pool.shutdown(cancel_futures=True)
            raise


def summary(durations: dict[Path, float]) -> str:
    seconds = sorted(durations.values())
    voices = {path.name.split("_")[1] for path in durations}
    classes = {path.parent.name for path in durations}
    return (
        f"{len(seconds)} clips, {len(voices)} voices, {len(classes)} classes; duration shortest {seconds[0]:.2f} s, "
        f"median {statistics.median(seconds):.2f} s, longest {seconds[-1]:.2f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="a new or empty folder for the class folders")
    parser.add_argument("--voices", type=int, default=12, help=f"speakers, 1 to {len(all_voices())} (default 12)")
    parser.add_argument("--takes", type=int, default=20, help="clips per digit and voice (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="picks the voices and each take's settings (default 0)")
    parser.add_argument(
        "--tempo-per-voice", action="store_true", help="each voice at a tempo of its own (default: any tempo per take)"
    )
    args = parser.parse_args(argv)
    try:
        durations = make_spoken_digits(
            args.out_dir, args.voices, args.takes, args.seed, progress=True, tempo_per_voice=args.tempo_per_voice
        )
    except (RuntimeError, ValueError, OSError) as err:  # EspeakMissing is a RuntimeError
        sys.exit(f"spoken_digits: {err}")
    print(f"{args.out_dir}: {summary(durations)}; group speakers with --group '{GROUP_REGEX}'")


if __name__ == "__main__":
    main()
