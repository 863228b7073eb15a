"""The claims the study gives a verdict on (workflow/claims.yaml): their evidence per setting, the
verdict rule, the reproduction measures and the report of them.
"""
