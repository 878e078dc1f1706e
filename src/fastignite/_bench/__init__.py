"""The speed benchmarks, inside the package so that an installed fastignite can run them.

* ``scenarios``: the engine configurations measured, the implementations they
  run on (hand loop, compiled and pure twins, the ignite drop-in, ignite) and
  the measurement;
* ``report``: the table, the plot and the progress display;
* ``cli``: ``python -m fastignite bench``.

``benchmarks/`` in a checkout holds the scripts built on them (the README's
report, the wheel's speed check, the allocation counts, pytest-benchmark).
Private: nothing here is API.
"""
