"""The study's datasets: the dataset table, where each split comes from, and their export to BEIR layout."""
