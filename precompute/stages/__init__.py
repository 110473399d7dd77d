"""The five stages of `precompute run` (method.md), in order. Each is `run(ctx) -> bool`: True when it did
work, False when every file it writes already existed (a resumed run)."""
from precompute.stages import baseline, capture, effects, identification, scoring

STAGES = (("baseline", baseline.run), ("identification", identification.run), ("capture", capture.run),
          ("scoring", scoring.run), ("effects", effects.run))
