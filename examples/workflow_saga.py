"""The trip-booking saga as a code-first workflow, and a code change for runs in flight.

    python examples/workflow_saga.py JOURNAL            # the car is sold out → all undone
    python examples/workflow_saga.py JOURNAL --car-ok   # booked; then a v2 of the code adds
                                                        # an insurance step behind ctx.patched

Each `await ctx.step(...)` is journaled (SQLite file JOURNAL) by its position; when the
workflow fails, every booking made is compensated, newest first (the flight and the hotel,
booked at once, are cancelled at once). The second part starts a trip with v1, stops it
after the car (past the point v2 changes), and resumes it with v2: `ctx.patched("insurance")`
is False for that run (its journal went past that point without it) and True for a new one.
"""

from __future__ import annotations

import logging
import sys

import anyio
import structlog

import flowcoord as fc

LEDGER: list[str] = []
HOLD = anyio.Event()


async def book_flight(trip: str) -> str:
    LEDGER.append(f"booked flight for {trip}")
    return f"FL-{trip}"


async def cancel_flight(trip: str, result: str | None) -> None:
    LEDGER.append(f"cancelled flight for {trip}")


async def book_hotel(trip: str, nights: int) -> str:
    LEDGER.append(f"booked hotel for {nights} nights")
    return f"HT-{trip}-{nights}"


async def cancel_hotel(trip: str, nights: int, result: str | None) -> None:
    LEDGER.append("cancelled hotel")


async def rent_car(flight: str, car_ok: bool) -> str:
    if not car_ok:
        raise LookupError("no cars left at the airport")
    LEDGER.append("rented car")
    return f"CAR-{flight}"


async def insure(trip: str) -> str:
    LEDGER.append("insured")
    return f"INS-{trip}"


async def wait_for_go() -> None:
    await HOLD.wait()


async def confirm(booking: str) -> str:
    return booking


def trip(version: int) -> fc.Workflow:
    @fc.workflow(name="trip")
    async def book(ctx: fc.Context, trip: str, car_ok: bool, pause: bool = False) -> str:
        flight, hotel = await ctx.gather(
            ctx.step(book_flight, trip, revert=cancel_flight),
            ctx.step(book_hotel, trip, 2, revert=cancel_hotel),
        )
        if version >= 2 and ctx.patched("insurance"):
            await ctx.step(insure, trip)
        car = await ctx.step(rent_car, flight, car_ok, retry=fc.Times(2))
        if pause:
            await ctx.step(wait_for_go)
        return str(await ctx.step(confirm, f"{flight}, {hotel}, {car}"))

    return book


async def main(journal: str, car_ok: bool) -> int:
    async with fc.Engine(fc.SQLiteJournal(journal)) as engine:
        if not car_ok:
            try:
                await engine.run(trip(1), {"trip": "LIS", "car_ok": False}, flow_id="t1")
            except fc.errors.StepFailed as exc:
                print(f"saga failed: {exc.failure.message}")
                for line in LEDGER:
                    print("  " + line)
                return 1
        out = await engine.run(trip(1), {"trip": "LIS", "car_ok": True}, flow_id="t2")
        print(f"trip booked: {out.result}")
        # v1 starts a trip and is stopped after its car (past the point v2 changes);
        # v2 of the code resumes it without the new step, and runs new trips with it
        handle = await engine.start(
            trip(1), {"trip": "OPO", "car_ok": True, "pause": True}, flow_id="t3"
        )
        await anyio.wait_all_tasks_blocked()
        handle.stop()
        HOLD.set()
        await handle.wait()
        LEDGER.clear()
        old = await engine.resume(trip(2), "t3")
        print(f"resumed on v2: {old.result}; insured: {'insured' in LEDGER}")
        new = await engine.run(trip(2), {"trip": "FAO", "car_ok": True}, flow_id="t4")
        print(f"new on v2: {new.result}; insured: {'insured' in LEDGER}")
    return 0


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    sys.exit(anyio.run(main, sys.argv[1], "--car-ok" in sys.argv))
