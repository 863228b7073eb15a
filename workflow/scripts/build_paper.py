"""Snakemake script: compile the paper (``sbmoe.analysis.paper.build_paper``).

input.main (paper/main.tex), input.macros, input.verdicts, input.verdicts_abstract, input.tables and
input.figures (in the order of
params.tables and params.figures, which name them under generated/ and generated/figures/);
output.pdf.
"""

from sbmoe.analysis.paper import build_paper
from sbmoe.pipeline.joblog import log_to

smk = snakemake  # noqa: F821 (set by Snakemake)
with log_to(smk.log[0]):
    generated = {"macros.tex": smk.input.macros}
    generated.update({"verdicts.tex": smk.input.verdicts, "verdicts_abstract.tex": smk.input.verdicts_abstract})
    generated.update({f"{name}.tex": path for name, path in zip(smk.params.tables, smk.input.tables, strict=True)})
    generated.update(
        {f"figures/{name}.pdf": path for name, path in zip(smk.params.figures, smk.input.figures, strict=True)}
    )
    build_paper(smk.input.main, generated, smk.output.pdf)
