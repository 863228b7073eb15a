"""The study's systems: the variant registry (:mod:`.registry`), their names in paths (:mod:`.names`) and every
label tables and figures show (:mod:`.labels`); free of PyTorch."""
