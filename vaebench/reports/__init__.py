"""Reports: tables, plots, image grids, HTML report and regression checks, read from the store.

    summary   the comparison frame of `vaebench results` (mean and sd per setting)
    stats     bootstrap CIs, Holm-corrected Mann-Whitney U tests, ranks
    tables    comparison / pairwise / rank tables as Markdown, LaTeX (booktabs), CSV and HTML
    plots     seaborn plots (PNG and SVG)
    grids     image grids of a model, made at evaluation time and stored as PNG artifacts
    html      the self-contained HTML page
    report    `vaebench report`: write_report(run_dir, out_dir)
    check     `vaebench baseline` / `vaebench check`, and assert_matches_baseline for pytest

Kept import-free: the harness imports `grids` in its worker processes.
"""
