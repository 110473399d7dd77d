"""The stages of `precompute run` (method.md, plus the checks a reviewer asks for), in order. Each is
`run(ctx) -> bool`: True when it did work, False when every file it writes already existed (a resumed run).
The critical-neuron screen comes before effects, whose random sets may exclude critical neurons."""
from precompute.stages import (baseline, capture, critical, distributions, effects, identification, means, null,
                               scoring)

STAGES = (("baseline", baseline.run), ("identification", identification.run), ("capture", capture.run),
          ("scoring", scoring.run), ("distributions", distributions.run), ("means", means.run),
          ("null", null.run),
          ("critical", critical.run), ("effects", effects.run))
