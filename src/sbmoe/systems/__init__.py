"""The study's systems by name: the variants, their names in paths and their labels in tables; free of PyTorch."""
