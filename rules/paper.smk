# The paper: paper/main.tex compiled with latexmk over the generated tables, figures and macros.


localrules:
    paper,


PAPER_TABLES = STUDY.paper_tables()
PAPER_FIGURES = STUDY.paper_figures()


rule paper:
    input:
        main=layout.PAPER_SOURCE,
        macros=layout.MACROS,
        verdicts=layout.VERDICTS_SECTION,
        verdicts_abstract=layout.VERDICTS_ABSTRACT,
        tables=[layout.table(name, "tex") for name in PAPER_TABLES],
        figures=[layout.figure(name, "pdf") for name in PAPER_FIGURES],
    output:
        pdf=report(layout.PAPER, category="Paper", caption="../workflow/report/paper.rst"),
    log:
        layout.log("paper"),
    conda:
        "../envs/latex.yaml"
    params:
        tables=PAPER_TABLES,
        figures=PAPER_FIGURES,
    script:
        "../workflow/scripts/build_paper.py"
