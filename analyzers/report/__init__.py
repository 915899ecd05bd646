"""HTML reports: one self-contained page from analysed windows or from the results indices."""
