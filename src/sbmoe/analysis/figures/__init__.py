"""The paper's figures, one module each, drawn with matplotlib's Agg canvas and saved as PDF and PNG atomically."""
