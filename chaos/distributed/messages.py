"""The messages between a master and its workers (Locust's ``register_message`` / ``send_message``).

Chaos runs once, on the master; figures are measured on the workers. The master tells the workers
the run before they spawn users, tells them of every fault window, has them run ``traffic_nodes``
faults on their own clients (and waits for their acknowledgements), and collects each worker's
closed windows as they close and its final figures at the end. Data is plain JSON-like data;
every message names its test, and a message of another test is ignored.
"""

from __future__ import annotations

SETUP = "rr_setup"  # master -> workers: {test, run_id, profile, url, admin_url}
READY = "rr_ready"  # worker -> master: {test, error}
WINDOW_OPENED = "rr_window_opened"  # master -> workers: {test, fault_id, name, time}: a fault's injection began at time
RUN_FAULT = "rr_run_fault"  # master -> workers: {test, fault_id, name, params}: run this fault on your clients
FAULT_RAN = "rr_fault_ran"  # worker -> master: {test, fault_id, details, error}: its injection returned
WINDOW = "rr_window"  # worker -> master: {test, window}: a window this worker closed
COLLECT = "rr_collect"  # master -> workers: {test}: stop, and send your final figures
FINAL = "rr_final"  # worker -> master: {test, result, aborted}
