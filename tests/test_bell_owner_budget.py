"""``--bell`` in a folder shared with other users: their runs must not ring
the terminal bell on and on, nor use up the rings owed to yours (as the
alert command's per-owner limit, tests/test_alerts_owner_budget.py)."""
from __future__ import annotations

import os
import time

from ttop import progress as P
from ttop.collect import Collector
from ttop.sinks.alerts import COMMAND_PER_MINUTE, Alerts
from ttop.ui.app import App
from users import three_users  # noqa: F401 (fixture)


def _write(folder, name, uid, status="RUNNING", loss=1.0):
    path = os.path.join(folder, name + ".json")
    now = time.time()
    P.write_json_atomic(path, {"format": P.PROGRESS_FORMAT, "run_name": name, "status": status, "updated_at": now,
                               "started_at": 1.0, "ended_at": now if status != "RUNNING" else None,
                               "host": "elsewhere", "heartbeat_interval": 60.0, "metrics": {"loss": loss}})
    os.chown(path, uid, uid)


def test_another_users_flapping_runs_ring_the_bell_a_few_times_a_minute_and_mine_still_rings(
        three_users, tmp_path):  # noqa: F811
    """A run of eve's whose loss flips between NaN and a number is a health
    event (CRIT, back to OK) at every cycle: each one rang the bell, for as
    long as she kept it up, and the bell of your own run failing was one
    more among them."""
    eve = three_users[0]
    folder = str(tmp_path)
    os.chmod(folder, 0o755)
    _write(folder, "flap", eve.uid)
    _write(folder, "mine", os.geteuid())
    c = Collector(folder, gpu=False, tpu=False)
    alerts = Alerts()
    app = App(c)
    app.bell = True
    alerts.on_event.append(app.alert)
    rings = []
    try:
        for i in range(3 * COMMAND_PER_MINUTE):
            _write(folder, "flap", eve.uid, loss="NaN" if i % 2 == 0 else 1.0)
            alerts.feed(c.collect())
            rings.append(app._bell_pending)
            app._bell_pending = False
        assert alerts.count >= 3 * COMMAND_PER_MINUTE - 1  # an event at every flip
        assert sum(rings) == COMMAND_PER_MINUTE, rings
        _write(folder, "mine", os.geteuid(), status="FAILED")
        (ev,) = alerts.feed(c.collect())
        assert ev["run"] == "mine" and ev["status"] == "FAILED"
        assert app._bell_pending
    finally:
        app.close()
        c.stop()
