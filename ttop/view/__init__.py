"""Pure rendering: (snapshot, view state, width, height) -> lines of
``(text, role)`` segments.

Nothing here imports curses or touches the filesystem; the curses UI
(:mod:`ttop.ui`) and the ``--once`` printer (:mod:`ttop.sinks.once`) both draw
what these functions return. Entry point: :func:`ttop.view.screen.render_main`.
"""
