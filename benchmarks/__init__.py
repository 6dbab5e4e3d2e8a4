"""netcore's benchmark suite (``pytest benchmarks/ --benchmark-only``) and side-by-side comparison harness
(``netcore bench`` / ``python -m benchmarks.compare``)."""
