# The paper: paper/main.tex compiled with latexmk over the generated tables, figures and macros.

localrules:
    paper,


PAPER_TABLES = ["dataset_stats", "in_domain", "zero_shot", "reproduction", "experts"]
PAPER_FIGURES = ["expert_count", "tsne", "training_curves"]
if ROUTED_SETS:
    PAPER_TABLES.append("routing")
    PAPER_FIGURES.append("routing")


rule paper:
    input:
        main="paper/main.tex",
        macros="results/analysis/macros.tex",
        verdicts="results/analysis/verdicts.tex",
        verdicts_abstract="results/analysis/verdicts_abstract.tex",
        tables=expand("results/analysis/tables/{table}.tex", table=PAPER_TABLES),
        figures=expand("results/analysis/figures/{figure}.pdf", figure=PAPER_FIGURES),
    output:
        pdf=report("results/paper/main.pdf", category="Paper", caption="../workflow/report/paper.rst"),
    log:
        "logs/paper.log",
    params:
        tables=PAPER_TABLES,
        figures=PAPER_FIGURES,
    conda:
        "../envs/latex.yaml"
    script:
        "../workflow/scripts/build_paper.py"
