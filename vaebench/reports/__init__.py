"""Reports: tables, plots, image grids, HTML report and regression checks, read from the store."""
