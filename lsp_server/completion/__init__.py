"""The completion pipeline: context, FIM prompt, post-processing, typed-ahead cache."""
