"""The curses monitor: the only package that imports curses.

``ttop.ui.app.run_ui(collector, *, ascii=False) -> int`` runs
it; screens follow the contract in :mod:`ttop.ui.screen`.
"""
