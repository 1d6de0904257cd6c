"""The Ray Tune function trainables: a search trial through its fidelity levels, a confirmation
run on the test split, a population member (PBT / PB2); each on one process or on Ray Train
workers."""
