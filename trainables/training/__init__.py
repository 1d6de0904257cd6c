"""One training run: the engine's epoch loop, the parts it is built from, the attack's forward
pass, cost accounting, checkpoints and a measured estimate of its GPU memory."""
