"""One clip of the synthetic set: a song planned from its genre's recipe (tempo, key, harmony),
its parts rendered and mixed, then produced (swells, reverb, compression) and recorded.

`synthesize_clip` is the entry point: a pure function of genre, length and seed. Each part, and
then the production and the recording chain, draws from the one generator the seed starts, in a
fixed order, so the same seed gives the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from common.errors import UserError
from features.synthetic.instruments import KITS, SR, filtered_noise, kit_sounds, note, pick, uniform
from features.synthetic.recipes import (
    BASS_LINES,
    CHORD_KINDS,
    CHORD_RHYTHMS,
    GENRES,
    GROOVES,
    SCALES,
    VELOCITY,
    Recipe,
    clip_recipe,
)

# --- one song ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    """The choices every part of a clip shares: tempo and feel, key, harmony, length."""

    recipe: Recipe
    tempo: float
    swing: float
    key: int  # pitch class of the tonic, 0 = C
    scale: tuple[int, ...]
    progression: tuple[int, ...]  # scale degrees
    steps_per_chord: int  # in sixteenth notes
    chord_kind: str
    n_steps: int  # sixteenth notes rendered

    @property
    def step(self) -> float:
        """Seconds per sixteenth note."""
        return 15.0 / self.tempo

    def times(self, steps: np.ndarray) -> np.ndarray:
        """Onsets in seconds of sixteenth-note steps, off-beats delayed by the swing."""
        steps = np.asarray(steps)
        if self.recipe.swing_unit == 8:
            late = np.where(steps % 4 == 2, self.swing * 4 * self.step, 0.0)
        else:
            late = np.where(steps % 2 == 1, self.swing * 2 * self.step, 0.0)
        return steps * self.step + late

    def degrees(self, steps: np.ndarray) -> np.ndarray:
        """The chord (as a scale degree) sounding at each step."""
        return np.asarray(self.progression)[(np.asarray(steps) // self.steps_per_chord) % len(self.progression)]

    def pitch(self, degree: int, octave: int) -> int:
        """MIDI note of a scale degree; degrees past 6 climb into the next octaves."""
        up, index = divmod(int(degree), 7)
        return 12 * (octave + up + 1) + self.key + self.scale[index]

    def chord(self, degree: int, octave: int) -> list[int]:
        """MIDI notes of the chord on `degree`, root position."""
        shape = CHORD_KINDS[self.chord_kind]
        root = self.pitch(degree, octave)
        if shape is None:
            return [root, root + 7, root + 12]
        return [self.pitch(degree + s, octave) for s in shape]


def _plan_song(recipe: Recipe, seconds: float, rng: np.random.Generator) -> Song:
    tempo = uniform(rng, recipe.tempo)
    bars = math.ceil(seconds * tempo / 240) + 1  # a spare bar, so the excerpt can start anywhere in the first
    return Song(
        recipe=recipe,
        tempo=tempo,
        swing=uniform(rng, recipe.swing),
        key=int(rng.integers(12)),
        scale=SCALES[pick(rng, recipe.scales)],
        progression=pick(rng, recipe.progressions),
        steps_per_chord=4 * int(pick(rng, recipe.beats_per_chord)),
        chord_kind=pick(rng, recipe.chord_kinds),
        n_steps=16 * bars,
    )


def _pattern_steps(pattern: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps where a one-bar pattern plays when repeated over the song, and the symbol at each."""
    tiled = np.resize(np.array(list(pattern)), n_steps)
    steps = np.flatnonzero(tiled != ".")
    return steps, tiled[steps]


def _add(buf: np.ndarray, sound: np.ndarray, time: float, gain: float) -> None:
    """Mix `sound` into `buf` at `time` seconds: one slice add per event, never a loop over samples."""
    start = round(max(time, 0.0) * SR)
    if start < buf.size:
        m = min(sound.size, buf.size - start)
        buf[start : start + m] += gain * sound[:m]


def _place(buf: np.ndarray, sound: np.ndarray, times: np.ndarray, gains: np.ndarray) -> None:
    """Mix copies of `sound` into `buf` at each of `times` (seconds)."""
    for time, gain in zip(times, gains):
        _add(buf, sound, time, gain)


# --- the parts -----------------------------------------------------------------------------------

VOICE_LEVELS = {"kick": 1.0, "snare": 0.8, "rim": 0.5, "hat": 0.3, "open_hat": 0.3, "ride": 0.35, "crash": 0.4}


def _render_drums(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """The groove repeated, humanised, with a fill before and a crash on each eight-bar phrase."""
    sounds = kit_sounds(rng, KITS[pick(rng, song.recipe.kits)])
    groove = dict(GROOVES[pick(rng, song.recipe.grooves)])
    phrase = 16 * 8
    groove["crash"] = "X" + "." * (phrase - 1) if rng.random() < 0.7 else "."
    buf = np.zeros(n)
    jitter = uniform(rng, (0.002, 0.012))  # a drum machine is tight, a jazz drummer loose
    for voice, pattern in groove.items():
        steps, symbols = _pattern_steps(pattern, song.n_steps)
        gains = np.array([VELOCITY[s] for s in symbols]) * rng.uniform(0.8, 1.0, steps.size)
        gains *= VOICE_LEVELS[voice] * 10 ** (uniform(rng, (-4, 4)) / 20)
        _place(buf, sounds[voice], song.times(steps) + rng.normal(0, jitter, steps.size), gains)
    if rng.random() < 0.7:  # snare fill on the last beat of each phrase
        fill = (np.arange(phrase - 4, song.n_steps, phrase)[:, None] + np.arange(4)).ravel()
        _place(buf, sounds["snare"], song.times(fill), np.tile([0.5, 0.6, 0.75, 0.9], fill.size // 4))
    return buf


def _bass_pitches(song: Song, steps: np.ndarray, symbols: np.ndarray, rng: np.random.Generator) -> list[int]:
    """MIDI notes for a bass line's symbols: chord roots around E1-D#2, fifths, octaves, walking tones."""
    degrees = song.degrees(steps)
    pitches = []
    for step, symbol, degree in zip(steps, symbols, degrees):
        root = 28 + (song.pitch(degree, 0) - 28) % 12
        third = root + (song.pitch(degree + 2, 0) - root) % 12
        seventh = root + (song.pitch(degree + 6, 0) - root) % 12
        if symbol == "w":  # walking: root on the change, approach the next root, chord tones between
            next_root = 28 + (song.pitch(song.degrees([step + 4])[0], 0) - 28) % 12
            if step % song.steps_per_chord == 0:
                symbol = "r"
            elif (step + 4) % song.steps_per_chord == 0:
                pitches.append(next_root + int(pick(rng, (-1, 1, 2))))
                continue
            else:
                pitches.append(int(pick(rng, (root + 7, third, seventh, root + 12, third + 12))))
                continue
        pitches.append({"r": root, "f": root + 7, "o": root + 12, "t": third}[symbol])
    return pitches


def _gaps(song: Song, steps: np.ndarray) -> np.ndarray:
    """Seconds from each onset to the next (the last to the end of the song)."""
    nominal = song.times(np.append(steps, song.n_steps))
    return np.diff(nominal)


def _render_bass(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    pattern, gate = BASS_LINES[pick(rng, song.recipe.bass_lines)]
    timbre = pick(rng, song.recipe.bass_timbres)
    steps, symbols = _pattern_steps(pattern, song.n_steps)
    pitches = _bass_pitches(song, steps, symbols, rng)
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.004, steps.size)
    gains = np.where(steps % 4 == 0, 1.0, 0.8) * rng.uniform(0.85, 1.0, steps.size)
    for time, gain, gap, pitch in zip(times, gains, _gaps(song, steps), pitches):
        _add(buf, note(timbre, pitch, max(2, round(gate * gap * 100))), time, gain)
    return buf


def _chord_events(song: Song, pattern: str, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """A chord rhythm's steps and symbols; held chords also restrike on every chord change."""
    steps, symbols = _pattern_steps(pattern, song.n_steps)
    if gate >= 0.9 and "a" not in pattern:
        changes = np.arange(0, song.n_steps, song.steps_per_chord)
        steps = np.union1d(steps, changes)
        symbols = np.full(steps.size, "x")
    return steps, symbols


def _voicing(song: Song, degree: int, low: int) -> list[int]:
    """Close voicing of the chord inside the octave above `low`; power chords keep their shape."""
    notes = song.chord(degree, 1)
    if song.chord_kind == "power":
        shift = 12 * math.ceil((low - notes[0]) / 12)
        return [p + shift for p in notes]
    return sorted(low + (p - low) % 12 for p in notes)


def _render_chords(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    timbre = pick(rng, song.recipe.chord_timbres)
    pattern, gate = CHORD_RHYTHMS[pick(rng, song.recipe.chord_rhythms)]
    steps, symbols = _chord_events(song, pattern, gate)
    low = int(rng.integers(40, 47)) if song.chord_kind == "power" else int(rng.integers(50, 60))
    strum = 0.012 if timbre in ("guitar", "banjo", "dist_guitar") else 0.0  # guitars strum, keys strike
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.004, steps.size)
    gains = np.where(steps % 4 == 0, 1.0, 0.75) * rng.uniform(0.8, 1.0, steps.size)
    for count, (step, symbol, time, gain, gap) in enumerate(zip(steps, symbols, times, gains, _gaps(song, steps))):
        notes = _voicing(song, song.degrees([step])[0], low)
        if symbol == "a":
            notes = [notes[count % len(notes)]]
        centis = max(2, round(gate * gap * 100))
        for i, pitch in enumerate(notes):
            _add(buf, note(timbre, pitch, centis), time + i * strum, gain)
    drive = uniform(rng, song.recipe.drive)
    if drive > 1.05:  # tanh clipping, then a speaker cabinet's low-pass
        buf = np.tanh(drive * buf / (np.abs(buf).max() + 1e-9)) / math.tanh(drive)
        buf = signal.sosfilt(signal.butter(2, uniform(rng, (3500, 6000)), fs=SR, output="sos"), buf)
    return buf


def _render_melody(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """A random walk on the scale in eighths, resting in some phrases, chord tones on strong beats."""
    timbre = pick(rng, song.recipe.melody_timbres)
    eighths = np.arange(0, song.n_steps, 2)
    playing = rng.random(eighths.size) < uniform(rng, song.recipe.melody_density)
    resting = np.repeat(rng.random(song.n_steps // 32 + 1) < 0.3, 16)[: eighths.size]  # two-bar phrases
    steps = eighths[playing & ~resting]
    walk = 10 + np.cumsum(rng.choice([-2, -1, -1, 0, 1, 1, 2], steps.size))
    degrees = 7 + np.abs((walk - 7) % 24 - 12)  # fold the walk into two octaves
    strong = steps % 8 == 0
    roots = song.degrees(steps)
    degrees = np.where(strong, roots + 7 + 2 * np.round((degrees - roots - 7) / 2), degrees)
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.006, steps.size)
    gains = np.where(strong, 1.0, 0.8) * rng.uniform(0.75, 1.0, steps.size)
    for degree, time, gain, gap in zip(degrees, times, gains, _gaps(song, steps)):
        centis = max(5, round(0.9 * min(gap, 8 * song.step) * 100))
        _add(buf, note(timbre, song.pitch(int(degree), 3), centis), time, gain)
    return buf


PARTS = {"drums": _render_drums, "bass": _render_bass, "chords": _render_chords, "melody": _render_melody}


def _render_parts(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """The parts that play in this clip, each at its genre's level give or take 3 dB."""
    playing = rng.random(len(PARTS)) < np.asarray(song.recipe.parts)
    if not song.recipe.grooves:
        playing[0] = False
    if not playing[2:].any():  # every clip has something tonal
        playing[2] = True
    mix = np.zeros(n)
    for on, level, render in zip(playing, song.recipe.levels, PARTS.values()):
        if on:
            stem = render(song, rng, n)
            rms = np.sqrt(np.mean(stem**2)) + 1e-9
            mix += stem / rms * 10 ** ((level + uniform(rng, (-3, 3))) / 20)
    return mix


# --- production and recording --------------------------------------------------------------------


def _swells(n: int, depth_db: float, rng: np.random.Generator) -> np.ndarray:
    """Slow level changes: a crescendo or fade across the clip plus swells every few seconds."""
    points = np.linspace(0, n, max(3, n // (3 * SR)))
    db = np.linspace(0, rng.uniform(-1, 1) * depth_db, points.size) + rng.normal(0, depth_db / 3, points.size)
    return 10 ** (np.interp(np.arange(n), points, db) / 20)


def _reverb(x: np.ndarray, recipe: Recipe, tempo: float, rng: np.random.Generator) -> np.ndarray:
    """A room as exponentially decaying, darkened noise; dub clips add a tempo-synced echo."""
    rt60 = uniform(rng, recipe.reverb)
    t = np.arange(int(rt60 * SR)) / SR
    ir = filtered_noise(rng, t.size, "lowpass", uniform(rng, (2500, 8000))) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt(np.sum(ir**2))
    if rng.random() < recipe.echo:  # dotted-eighth echoes, each quieter
        delay = int(0.75 * 60 / tempo * SR)
        ir = np.pad(ir, (0, 5 * delay + 1 - ir.size)) if ir.size < 5 * delay + 1 else ir
        ir[np.arange(1, 5) * delay] += 0.6 ** np.arange(1, 5) * 3
    wet = signal.fftconvolve(x, ir)[: x.size]
    mix = uniform(rng, recipe.wet)
    return (1 - mix) * x + mix * wet * np.sqrt(np.mean(x**2) / (np.mean(wet**2) + 1e-12))


def _compress(x: np.ndarray, ratio: float) -> np.ndarray:
    """Turn down what rises above the quieter passages: loud genres sound dense and flat."""
    if ratio <= 1.05:
        return x
    envelope = np.sqrt(ndimage.uniform_filter1d(x**2, int(0.05 * SR)) + 1e-12)
    threshold = np.percentile(envelope, 30)
    return x * np.minimum(1.0, (envelope / threshold) ** (1 / ratio - 1))


def _record(x: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """A random recording chain, shared by all genres: band limits, hiss, hum, crackle.

    Real collections mix old and new, clean and noisy recordings; this blurs the average spectrum
    so a classifier must also listen to what is played, not only to how it was recorded.
    """
    low, high = uniform(rng, (20, 150)), float(np.exp(uniform(rng, (np.log(4500), np.log(10500)))))
    x = signal.sosfilt(signal.butter(2 * int(rng.integers(1, 3)), (low, high), "bandpass", fs=SR, output="sos"), x)
    rms = np.sqrt(np.mean(x**2)) + 1e-9
    hiss = filtered_noise(rng, x.size, "lowpass", uniform(rng, (2000, 10000)))
    x = x + hiss / np.sqrt(np.mean(hiss**2)) * rms * 10 ** (uniform(rng, recipe.noise_db) / 20)
    if rng.random() < 0.1:  # mains hum
        t = np.arange(x.size) / SR
        hz = pick(rng, (50.0, 60.0))
        x = x + rms * 0.03 * (np.sin(2 * np.pi * hz * t) + 0.5 * np.sin(4 * np.pi * hz * t))
    if rng.random() < recipe.crackle:
        clicks = (rng.random(x.size) < 8 / SR) * rng.standard_normal(x.size) * rms * uniform(rng, (1, 4))
        x = x + signal.sosfilt(signal.butter(2, 1500, "highpass", fs=SR, output="sos"), clicks)
    return x


def _render(genre: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A song of the genre, mixed, produced, cut to an excerpt of `seconds`, recorded, at a random level."""
    recipe = clip_recipe(genre, rng)
    song = _plan_song(recipe, seconds, rng)
    n = round(seconds * SR)
    spare = round(16 * song.step * SR)  # one bar, the most the excerpt's start moves
    total = n + spare
    x = _render_parts(song, rng, total)
    x = x * _swells(total, uniform(rng, recipe.dynamics), rng)
    x = _reverb(x, recipe, song.tempo, rng)
    x = _compress(x, uniform(rng, recipe.compress))
    start = int(rng.integers(0, spare + 1))  # an excerpt from inside a song, like GTZAN
    x = _record(x[start : start + n], recipe, rng)
    return x / (np.abs(x).max() + 1e-9) * uniform(rng, (0.3, 0.95))


def synthesize_clip(genre: str, seconds: float, seed: int | Sequence[int]) -> np.ndarray:
    """One clip of `genre`: mono float32 in [-1, 1] at `SAMPLE_RATE`, a pure function of its arguments.

    `seed` is anything `np.random.default_rng` takes; the dataset passes (seed, genre index, clip
    index), so a clip never depends on which worker made it or in which order.
    """
    if genre not in GENRES:
        raise UserError(f"unknown genre {genre!r} (known: {', '.join(GENRES)})")
    if not seconds > 0:
        raise UserError(f"seconds must be positive, got {seconds!r}")
    audio = _render(genre, seconds, np.random.default_rng(seed))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
