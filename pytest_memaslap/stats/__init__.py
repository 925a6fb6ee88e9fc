"""Pure numbers: latency histograms, per-phase results and their exact merge, rounds, the result view."""
