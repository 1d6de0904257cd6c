"""The Ray Tune layer: searcher, scheduler wrappers, budget, resources, Tune runs and callbacks."""
