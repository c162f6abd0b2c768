"""Demo seeding benchmark: the work a first `dutydesk up --demo` gives this machine, in CPU time.

In one process, on an empty temporary DUTYDESK_HOME: migrate, run every demo seeder
(`dutydesk.demo.seed_demo`, what `up --demo` does before it starts the processes), then run
every job that is due within the first ten minutes one after another, as the worker would
(export runs, escalations, deliveries; the alarm replay the alarms seeder schedules five
minutes out is included, pulled forward). CPU time (`time.process_time`, every thread) is
reported beside wall time because it barely depends on what else the machine is doing; on a
shared machine wall time does.

The last line is

    demo_seed_cpu_s=<float> demo_jobs_cpu_s=<float> export_jobs=<int> seed_wall_s=<float>

Run from the repository root: `.venv/bin/python bench/demo_seed.py`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time


def main() -> None:
    home = tempfile.mkdtemp(prefix="dutydesk-seed-")
    for name in [name for name in os.environ if name.startswith("DUTYDESK_")]:
        del os.environ[name]
    os.environ["DUTYDESK_HOME"] = home
    os.environ["DUTYDESK_DEMO_PASSWORD"] = "demo password for the benchmark"

    from sqlalchemy import func, select, update

    from dutydesk import migrations
    from dutydesk.db import session_factory, utcnow
    from dutydesk.demo import seed_demo
    from dutydesk.jobs import service as jobs
    from dutydesk.jobs.models import Job
    from dutydesk.records.store import upgrade_records
    from dutydesk.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    migrations.upgrade(settings.effective_database_url)
    upgrade_records(settings.effective_records_url)
    factory = session_factory()

    wall, cpu = time.perf_counter(), time.process_time()
    seed_demo(settings, factory)
    seed_wall, seed_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"seeding: {seed_wall:.1f} s wall, {seed_cpu:.1f} s CPU")

    with factory() as session:
        export_jobs = session.scalar(select(func.count()).where(Job.kind == "export.run")) or 0
    horizon = utcnow() + dt.timedelta(minutes=10)
    wall, cpu = time.perf_counter(), time.process_time()
    ran = idle = 0
    while idle < 20:
        with factory() as session:
            # What is due in the first ten minutes is run now (a job that waits for others
            # is put back a little; it is pulled forward again on the next pass).
            session.execute(
                update(Job)
                .where(Job.state == "queued", Job.run_after <= horizon)
                .values(run_after=utcnow())
            )
            session.commit()
            due = list(
                session.scalars(
                    select(Job.id)
                    .where(Job.state == "queued", Job.run_after <= utcnow())
                    .order_by(Job.id)
                )
            )
        done = [jobs.execute(job_id, "bench", factory) for job_id in due]
        ran += sum(state != "skipped" for state in done)
        idle = 0 if any(state != "skipped" for state in done) else idle + 1
        if not due:
            break
        if idle:
            time.sleep(0.1)
    jobs_wall, jobs_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{ran} jobs ({export_jobs} export runs): {jobs_wall:.1f} s wall, {jobs_cpu:.1f} s CPU")
    shutil.rmtree(home, ignore_errors=True)
    print(
        f"demo_seed_cpu_s={seed_cpu:.1f} demo_jobs_cpu_s={jobs_cpu:.1f} "
        f"export_jobs={export_jobs} seed_wall_s={seed_wall:.1f}"
    )


if __name__ == "__main__":
    main()
