"""Reports: tables, plots, HTML report and regression checks, read from the store only.

    summary   the comparison frame of `vaebench results` (mean and sd per setting)
    stats     bootstrap CIs, Holm-corrected Mann-Whitney U tests, ranks
    tables    comparison / pairwise / rank tables as Markdown, LaTeX (booktabs), CSV and HTML
    plots     seaborn plots (PNG and SVG)
    html      the self-contained HTML page
    report    `vaebench report`: write_report(run_dir, out_dir)
    check     `vaebench baseline` / `vaebench check`, and assert_matches_baseline for pytest

Image grids are made by the harness (`vaebench.bench.grids`) while the model exists and
stored as PNG artifacts; reports only read them.
"""
