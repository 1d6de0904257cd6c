"""What ``raysearch bench`` measures: epoch time and memory per method, the search's overhead and
economics, per-trial overhead at 50 and 500 trials, and the GPU smoke check.

Each module is one benchmark; ``raysearch.commands.bench`` only turns arguments into one of them
and prints what it returns.
"""
