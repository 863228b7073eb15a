"""Running the study: its stages as functions of paths, configuration and study checks, the command
line, job logs and resuming.
"""
