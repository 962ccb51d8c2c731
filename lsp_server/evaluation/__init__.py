"""`gearshift eval`: a private benchmark of each installed tier on the user's own repository.

``repository`` finds the files worth masking (tracked by git, supported, not neverSend, not binary or generated),
``sampling`` masks lines and short spans of them, ``runner`` completes each through the full pipeline,
``metrics`` scores the suggestions, ``recommend`` picks the tier, ``results`` keeps the report in the user cache.
"""
