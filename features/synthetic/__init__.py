"""The built-in synthetic 8-genre dataset, in GTZAN's layout, so the project runs where GTZAN is absent.
`generate_dataset` writes it; `python -m features.synth` is its command line.

Each genre is a `Recipe`: ranges and choices of musical ingredients (tempo, drum groove and kit, bass
line, chord instrument, harmony, melody, distortion, reverb, noise, dynamics). A clip draws one song
from its genre's recipe, renders the parts with vectorised numpy/scipy, mixes them, and passes the mix
through a random "recording chain" (band limits, hiss, crackle, level) shared by all genres.

The recipes are calibrated so that the task is learnable but not trivial: genres share instruments
and overlap in tempo, some clips borrow an ingredient from another genre, and the recording chain
blurs the average spectrum a linear model leans on. Measured on the default set (seed 0, 40 clips x
30 s, 152/64/104 train/valid/test): logistic regression on per-clip mean+std of log-mel reaches 53%
validation accuracy (61% 5-fold CV), on MFCC 59%, on chroma 28%; a small 2D CNN on 3 s crops
reaches 42-56% after 5 short epochs and 60-70% with more training, never near 100%. Chance is 12.5%.

The modules, from the sounds up: `instruments` (timbres and notes, drum kits and drum sounds),
`recipes` (each genre's ingredients), `render` (one clip: the song, its parts, production and
recording), `generate` (the set on disk: split lists, the process pool, disk-space checks).
"""

from features.synthetic.generate import (
    DEFAULT_CLIPS_PER_GENRE,
    DEFAULT_SECONDS,
    SPLIT_FRACTIONS,
    assign_splits,
    bytes_needed,
    generate_dataset,
    split_sizes,
)
from features.synthetic.instruments import SAMPLE_RATE
from features.synthetic.recipes import GENRES
from features.synthetic.render import synthesize_clip

__all__ = [
    "DEFAULT_CLIPS_PER_GENRE",
    "DEFAULT_SECONDS",
    "GENRES",
    "SAMPLE_RATE",
    "SPLIT_FRACTIONS",
    "assign_splits",
    "bytes_needed",
    "generate_dataset",
    "split_sizes",
    "synthesize_clip",
]
