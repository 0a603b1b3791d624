"""Acting on runs: signals, control-file edits, deletion and log paths.

No curses here: the screens in :mod:`ttop.ui.levers` call these functions and
show the messages they return. Every function takes real paths and real PIDs
and re-checks the world right before acting:

* :mod:`.signals`: a process is only signalled if its create time, read *now*,
  matches the one seen in the snapshot (PIDs are reused); where the kernel
  supports it the signal goes through a pidfd opened *before* that check, so a
  process that exits and whose PID is reused in between is never hit;
* :mod:`.logs` and :mod:`.delete`: every path taken from a progress file
  (``logs``, ``run_dir``) goes through :func:`ttop.progress.resolve_inside`:
  what resolves (symlinks followed) outside the progress folder is refused,
  never read and never deleted;
* :mod:`.control`: a control file is written atomically with the next ``seq``,
  cumulatively while earlier edits are still unacknowledged, so two quick
  edits are both applied, in order.
"""
