"""What makes each genre of the synthetic set a genre: the tables of drum grooves, bass lines,
chord rhythms, scales and progressions, and one `Recipe` per genre that a clip draws its song from.

Recipes name instruments of `features.synthetic.instruments`; `clip_recipe` lets a clip borrow one
ingredient from another genre, so that genres overlap as real ones do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from features.synthetic.instruments import Range, pick

GENRES = ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")


# --- drum grooves -------------------------------------------------------------------------------

# A groove: one bar of 16th-note steps per drum voice. X accent, x normal, o ghost note.
GROOVES = {
    "four_floor": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
                   "open_hat": "..x...x...x...x."},
    "disco16": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
    "pop_rock": {"kick": "X.....x.X.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "pop_dance": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "..x...x...x...x."},
    "boombap": {"kick": "X......x..X.....", "snare": "....X.......X..o", "hat": "x.x.x.x.x.x.x.x."},
    "trap": {"kick": "X......X..X.....", "snare": "........X.......", "hat": "xxxxxxxxxxxoxxxx"},
    "one_drop": {"kick": "........X.......", "rim": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "rockers": {"kick": "X.......X.......", "rim": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "steppers": {"kick": "X...X...X...X...", "rim": "........X.......", "hat": "..x...x...x...x."},
    "double_kick": {"kick": "XxXxXxXxXxXxXxXx", "snare": "....X.......X...", "hat": "X...X...X...X..."},
    "gallop": {"kick": "X.xxX.xxX.xxX.xx", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "blast": {"kick": "x.x.x.x.x.x.x.x.", "snare": ".x.x.x.x.x.x.x.x", "ride": "x.x.x.x.x.x.x.x."},
    "jazz_swing": {"ride": "X...X.x.X...X.x.", "hat": "....x.......x...", "kick": "o...o...o...o...",
                   "snare": "......o.......o."},
    "jazz_two": {"ride": "X...X...X...X...", "hat": "....x.......x...", "kick": "o.......o......."},
    "train": {"kick": "X.......X.......", "snare": "ooooXoooooooXooo"},
    "two_step": {"kick": "X.......X.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
}  # fmt: skip
VELOCITY = {"X": 1.0, "x": 0.7, "o": 0.35}


# --- bass lines, chord rhythms, harmony ---------------------------------------------------------

# A bass line: one bar of steps naming the note (r root, f fifth, o octave, t third, w walking) and
# the share of the gap to the next note that it sounds (staccato disco octaves vs legato 808s).
BASS_LINES = {
    "roots": ("r...r...r...r...", 0.9),
    "eighths": ("r.r.r.r.r.r.r.r.", 0.8),
    "octaves": ("r.o.r.o.r.o.r.o.", 0.5),
    "disco_syncop": ("r..or..or.r.o.r.", 0.5),
    "root_fifth": ("r.......f.......", 0.9),
    "boom_chick": ("r.......f...t...", 0.7),
    "walking": ("w...w...w...w...", 0.95),
    "boombap": ("r......r..r.....", 1.0),
    "sub808": ("r.........r.....", 1.0),
    "reggae": ("..r...r.f.r...t.", 0.7),
    "gallop": ("r.rrr.rrr.rrr.rr", 0.6),
    "chug": ("rrrrrrrrrrrrrrrr", 0.5),
    "sustain": ("r...............", 1.0),
    "pop_syncop": ("r..r..r.r..r..r.", 0.7),
}

# A chord rhythm: x strikes the chord, a plays the next chord tone (arpeggio); gate as above.
# Gates of 0.9 and more mark held chords, which also restrike on every chord change.
CHORD_RHYTHMS = {
    "hold": ("x...............", 1.0),
    "half": ("x.......x.......", 1.0),
    "quarters": ("x...x...x...x...", 0.9),
    "strum8": ("x.x.x.x.x.x.x.x.", 0.85),
    "strum_country": ("x...x.x.x...x.x.", 0.8),
    "backbeat": ("....x.......x...", 0.5),
    "offbeat": ("..x...x...x...x.", 0.3),
    "funk16": ("x..x..x...x..x..", 0.35),
    "comp": ("x.....x.......x.", 0.5),
    "charleston": ("x.....x.........", 0.6),
    "arp8": ("a.a.a.a.a.a.a.a.", 1.0),
    "arp16": ("aaaaaaaaaaaaaaaa", 1.0),
    "power8": ("x.x.x.x.x.x.x.x.", 0.6),
    "chug16": ("xxxxxxxxxxxxxxxx", 0.5),
}

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
# Chord shapes as scale steps stacked on the chord's degree (so qualities follow the key), except
# power chords, which are fixed intervals (root, fifth, octave) whatever the scale.
CHORD_KINDS = {"triad": (0, 2, 4), "seventh": (0, 2, 4, 6), "ninth": (0, 2, 6, 8), "power": None}
# Progressions as 0-based scale degrees: (0, 4, 5, 3) is I-V-vi-IV in a major key.
POP = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (3, 0, 4, 5))
COUNTRY = ((0, 3, 4, 0), (0, 0, 3, 4), (0, 4, 3, 0), (0, 3, 0, 4))
BLUESY = ((0, 3, 0, 4), (0, 6, 3, 0))
JAZZ = ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (1, 4, 0, 5))
CLASSICAL = ((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 2, 3, 0, 3, 4), (0, 1, 4, 0), (0, 3, 6, 2, 5, 1, 4, 0))
VAMPS = ((0, 3), (0, 5), (0, 4), (0, 6, 5, 6), (1, 4))
METAL = ((0, 5, 6, 0), (0, 1), (0, 3, 4, 0), (0, 5, 3, 6), (0, 0, 1, 0))
REGGAE = ((0, 3), (0, 4), (0, 3, 4, 3), (0, 5, 3, 4))


# --- the genres --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a genre a genre, as ranges and choices a clip draws from."""

    tempo: Range  # beats per minute
    grooves: tuple[str, ...]  # GROOVES; empty = no drums
    kits: tuple[str, ...]
    swing: Range  # delay of the off-beat, as a share of its beat
    swing_unit: int  # 8: swung eighths (jazz), 16: swung sixteenths (boom-bap)
    scales: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    beats_per_chord: tuple[int, ...]  # how fast the harmony moves
    chord_kinds: tuple[str, ...]
    chord_timbres: tuple[str, ...]
    chord_rhythms: tuple[str, ...]
    bass_lines: tuple[str, ...]
    bass_timbres: tuple[str, ...]
    melody_timbres: tuple[str, ...]
    melody_density: Range  # chance of a melody note on each eighth
    parts: tuple[float, float, float, float]  # chance that drums, bass, chords, melody play
    levels: tuple[float, float, float, float]  # their usual balance in dB (each varies +-3 dB)
    drive: Range  # tanh gain on the chords: 1 clean, 10+ a metal guitar
    reverb: Range  # seconds for the room to decay by 60 dB
    wet: Range  # reverb share
    echo: float  # chance of a dub-style tempo delay
    dynamics: Range  # dB depth of slow swells and crescendos
    compress: Range  # compressor ratio: 1 natural, 6 radio-loud
    noise_db: Range  # hiss relative to the music
    crackle: float  # chance of vinyl crackle
    borrow: float  # chance that one ingredient comes from another genre's recipe


RECIPES: dict[str, Recipe] = {
    "classical": Recipe(
        tempo=(50, 140), grooves=(), kits=("acoustic",), swing=(0, 0), swing_unit=8,
        scales=("major", "harmonic_minor", "minor"), progressions=CLASSICAL, beats_per_chord=(2, 4, 8),
        chord_kinds=("triad", "triad", "seventh"), chord_timbres=("strings", "strings", "strings", "piano", "organ"),
        chord_rhythms=("hold", "half", "arp16", "arp8", "quarters"), bass_lines=("sustain", "roots"),
        bass_timbres=("cello", "cello", "bass_upright"),
        melody_timbres=("strings", "strings", "flute", "reed", "piano"),
        melody_density=(0.3, 0.8), parts=(0.0, 0.7, 1.0, 0.8), levels=(-6, -4, 0, -1), drive=(1, 1),
        reverb=(1.2, 3.0), wet=(0.25, 0.6), echo=0.0, dynamics=(4, 14), compress=(1, 1.3),
        noise_db=(-60, -30), crackle=0.15, borrow=0.1,
    ),
    "country": Recipe(
        tempo=(90, 150), grooves=("train", "two_step", "two_step"), kits=("acoustic",),
        swing=(0, 0.1), swing_unit=8, scales=("major", "major", "mixolydian"), progressions=COUNTRY,
        beats_per_chord=(4, 8), chord_kinds=("triad",), chord_timbres=("guitar", "guitar", "banjo", "banjo"),
        chord_rhythms=("strum8", "strum_country", "backbeat", "arp8"),
        bass_lines=("root_fifth", "boom_chick", "roots"), bass_timbres=("bass_electric", "bass_upright"),
        melody_timbres=("fiddle", "fiddle", "voice", "banjo"), melody_density=(0.3, 0.7),
        parts=(0.85, 0.9, 1.0, 0.8), levels=(-3, -4, 0, -2), drive=(1, 2.5), reverb=(0.3, 1.2),
        wet=(0.1, 0.3), echo=0.05, dynamics=(1, 5), compress=(1.5, 3), noise_db=(-55, -30), crackle=0.1,
        borrow=0.1,
    ),
    "disco": Recipe(
        tempo=(108, 132), grooves=("four_floor", "disco16"), kits=("disco", "acoustic"),
        swing=(0, 0.03), swing_unit=16, scales=("minor", "dorian", "major"), progressions=VAMPS + POP[:1] + JAZZ[1:2],
        beats_per_chord=(4, 8), chord_kinds=("seventh", "triad", "ninth"),
        chord_timbres=("strings", "strings", "guitar", "brass", "epiano"),
        chord_rhythms=("offbeat", "funk16", "hold", "quarters"), bass_lines=("octaves", "octaves", "disco_syncop"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("strings", "brass", "voice"),
        melody_density=(0.3, 0.6), parts=(0.95, 0.95, 0.9, 0.7), levels=(-1, -2, -2, -2), drive=(1, 1.5),
        reverb=(0.6, 1.6), wet=(0.1, 0.3), echo=0.05, dynamics=(0, 3), compress=(2, 4), noise_db=(-60, -35),
        crackle=0.1, borrow=0.1,
    ),
    "hiphop": Recipe(
        tempo=(72, 100), grooves=("boombap", "boombap", "trap"), kits=("808", "acoustic"), swing=(0.02, 0.15),
        swing_unit=16, scales=("minor", "dorian"), progressions=VAMPS + JAZZ[:1], beats_per_chord=(4, 8),
        chord_kinds=("seventh", "ninth"), chord_timbres=("epiano", "epiano", "piano", "pad"),
        chord_rhythms=("hold", "half", "comp", "quarters"), bass_lines=("boombap", "sub808", "roots"),
        bass_timbres=("bass_808", "bass_808", "bass_electric"), melody_timbres=("flute", "synth", "voice", "reed"),
        melody_density=(0.15, 0.4), parts=(1.0, 0.9, 0.8, 0.4), levels=(2, 0, -4, -5), drive=(1, 2),
        reverb=(0.3, 1.0), wet=(0.05, 0.2), echo=0.1, dynamics=(0, 2), compress=(3, 6), noise_db=(-50, -28),
        crackle=0.45, borrow=0.1,
    ),
    "jazz": Recipe(
        tempo=(90, 220), grooves=("jazz_swing", "jazz_swing", "jazz_two"), kits=("jazz",), swing=(0.08, 0.17),
        swing_unit=8, scales=("major", "dorian"), progressions=JAZZ, beats_per_chord=(2, 4),
        chord_kinds=("seventh", "ninth"), chord_timbres=("piano", "piano", "epiano", "guitar", "organ"),
        chord_rhythms=("comp", "charleston", "quarters"), bass_lines=("walking",), bass_timbres=("bass_upright",),
        melody_timbres=("reed", "reed", "brass", "piano"), melody_density=(0.5, 0.9),
        parts=(0.9, 0.95, 0.85, 0.8), levels=(-4, -2, -2, 0), drive=(1, 1.2), reverb=(0.8, 2.0), wet=(0.15, 0.4),
        echo=0.0, dynamics=(2, 8), compress=(1, 1.6), noise_db=(-55, -28), crackle=0.3, borrow=0.1,
    ),
    "metal": Recipe(
        tempo=(100, 200), grooves=("double_kick", "gallop", "blast", "pop_rock"), kits=("metal", "acoustic"),
        swing=(0, 0), swing_unit=8, scales=("minor", "phrygian", "harmonic_minor"), progressions=METAL,
        beats_per_chord=(2, 4, 8), chord_kinds=("power", "power", "triad"),
        chord_timbres=("dist_guitar", "dist_guitar", "dist_guitar", "organ"),
        chord_rhythms=("power8", "chug16", "hold", "quarters"), bass_lines=("chug", "gallop", "eighths"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("dist_guitar", "dist_guitar", "voice"),
        melody_density=(0.3, 0.8), parts=(0.95, 0.85, 1.0, 0.5), levels=(-2, -5, 0, -2), drive=(4, 20),
        reverb=(0.3, 1.2), wet=(0.08, 0.25), echo=0.05, dynamics=(0, 3), compress=(3, 6), noise_db=(-55, -30),
        crackle=0.0, borrow=0.1,
    ),
    "pop": Recipe(
        tempo=(88, 130), grooves=("pop_rock", "pop_dance", "four_floor", "two_step"), kits=("acoustic", "disco", "808"),
        swing=(0, 0.05), swing_unit=16, scales=("major", "major", "minor"), progressions=POP,
        beats_per_chord=(4, 8), chord_kinds=("triad", "triad", "seventh"),
        chord_timbres=("piano", "synth", "pad", "guitar"),
        chord_rhythms=("strum8", "quarters", "hold", "offbeat", "arp8"), bass_lines=("eighths", "pop_syncop", "roots"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("voice", "voice", "voice", "synth"),
        melody_density=(0.4, 0.8), parts=(0.9, 0.9, 0.95, 0.8), levels=(-2, -3, -2, 0), drive=(1, 3),
        reverb=(0.6, 1.6), wet=(0.1, 0.3), echo=0.1, dynamics=(0, 4), compress=(2.5, 5), noise_db=(-60, -35),
        crackle=0.05, borrow=0.1,
    ),
    "reggae": Recipe(
        tempo=(60, 92), grooves=("one_drop", "one_drop", "rockers", "steppers"), kits=("acoustic", "jazz"),
        swing=(0, 0.08), swing_unit=8, scales=("major", "minor"), progressions=REGGAE + BLUESY[:1],
        beats_per_chord=(4, 8), chord_kinds=("triad", "triad", "seventh"), chord_timbres=("organ", "guitar", "organ"),
        chord_rhythms=("offbeat", "offbeat", "backbeat"), bass_lines=("reggae", "reggae", "roots"),
        bass_timbres=("bass_electric", "bass_808"), melody_timbres=("organ", "reed", "brass", "voice"),
        melody_density=(0.2, 0.6), parts=(0.95, 1.0, 0.95, 0.6), levels=(-3, 0, -3, -3), drive=(1, 1.5),
        reverb=(0.5, 2.0), wet=(0.15, 0.45), echo=0.5, dynamics=(0, 3), compress=(1.5, 3), noise_db=(-55, -30),
        crackle=0.2, borrow=0.1,
    ),
}  # fmt: skip

# Ingredients a clip may take from another genre: a pop song with a disco beat, a metal riff on an organ.
BORROWABLE = ("tempo", "grooves", "bass_lines", "chord_timbres", "chord_rhythms", "melody_timbres", "progressions")


def clip_recipe(genre: str, rng: np.random.Generator) -> Recipe:
    """The genre's recipe, sometimes with one ingredient taken from another genre, so genres overlap."""
    recipe = RECIPES[genre]
    if rng.random() < recipe.borrow:
        other = RECIPES[pick(rng, [g for g in GENRES if g != genre])]
        field = pick(rng, BORROWABLE)
        recipe = replace(recipe, **{field: getattr(other, field)})
    return recipe
