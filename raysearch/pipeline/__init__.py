"""The stages of a search: the plan (experiment, resources, budget, warm starts), reuse of runs
already made, the Tune stages (reference, search, population, confirmation), and collection of
their results into the run directory.

Commands turn arguments into a call here and its result into text; the Python API
(``raysearch.search``, ``raysearch.confirm``) is these functions.
"""
