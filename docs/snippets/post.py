"""Post provisioning jobs to the board: `python post.py zk1:2181 web-1 web-2 ...`."""

import sys

import anyio

from flowcoord.coordination import JobSpec, post_jobs


async def main(zk: str, hosts: list[str]) -> None:
    specs = [JobSpec("provision", {"host": h}, flow_id=f"provision-{h}") for h in hosts]
    jobs = await post_jobs(specs, zk_hosts=zk, namespace="/tutorial")
    for job in jobs:
        print(f"posted {job.job_id}: {job.flow} {dict(job.inputs)} as {job.flow_id}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2:])
