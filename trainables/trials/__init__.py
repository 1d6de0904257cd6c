"""What a trial's process knows and tells: its config split from the search's controls, the setup
every trial shares, the fidelity levels it runs, what it reports to Tune, how its failures read."""
