"""The seed tutorial, as a script: the smallest use of TrainingMonitor.

    python examples/tutorial.py        # writes progress/tutorial.json
    ttop progress                      # in another terminal

Finishes in a few seconds. Edit ``learning_rate`` in ttop (key ``e``) while it
runs: the loop reads ``monitor.variables`` every batch.
"""
import random
import time

from ttop import TrainingMonitor

monitor = TrainingMonitor(output_file="progress/tutorial.json")
monitor.track_variables({"learning_rate": 0.01, "batch_size": 32})
monitor.start_monitoring()

monitor.start_phase("train")
loss = 2.0
for _batch in range(100):
    monitor.start_batch()
    time.sleep(0.03)  # the work of one batch
    lr = monitor.variables["learning_rate"]
    loss = loss * (1.0 - 2.0 * lr) + random.uniform(0.0, 0.01)
    monitor.update_metrics(loss=loss)
monitor.end_phase()

monitor.set_finished()
print("tutorial finished: loss %.4f, progress in %s" % (loss, monitor.path))
