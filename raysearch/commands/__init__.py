"""The user's commands, one module each: train, search, confirm, report, evaluate, bench.

Room map (arrows point down only): ``cli`` → ``commands`` → ``reporting`` and ``tuning`` →
``rundir`` → ``search_spaces`` → ``trainables``.
"""
