"""The paper's tables, figures and macros, read from result files (never from model code)."""
