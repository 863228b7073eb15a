"""The paper's tables, one module each, as booktabs LaTeX tabulars with the same numbers as tidy CSV."""
