"""One run on several workers (GPUs of one machine or of several): data-parallel training with
DistributedDataParallel and the Ray Train workers that run it."""
