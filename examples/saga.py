"""A trip-booking saga: book a flight, a hotel and a car; when one booking fails, every booking
already made is cancelled (its compensation runs), in reverse order.

    python examples/saga.py            # the car rental is sold out → everything is undone
    python examples/saga.py --car-ok   # all three bookings succeed
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import structlog

import flowcoord as fc

LEDGER: list[str] = []


@fc.task(provides="flight")
async def book_flight(trip: str) -> str:
    LEDGER.append(f"booked flight for {trip}")
    return f"FL-{trip}"


@book_flight.on_revert
async def cancel_flight(result: Any) -> None:
    if isinstance(result, str):
        LEDGER.append(f"cancelled flight {result}")


@fc.task(provides="hotel")
async def book_hotel(trip: str, nights: int = 2) -> str:
    LEDGER.append(f"booked hotel for {nights} nights")
    return f"HT-{trip}-{nights}"


@book_hotel.on_revert
async def cancel_hotel(result: Any) -> None:
    if isinstance(result, str):
        LEDGER.append(f"cancelled hotel {result}")


@fc.task(provides="car")
async def rent_car(trip: str, flight: str, car_ok: bool = False) -> str:
    if not car_ok:
        raise LookupError("no cars left at the airport")
    LEDGER.append("rented car")
    return f"CAR-{flight}"


def build() -> fc.Flow:
    # flight and hotel are booked concurrently; the car needs the flight number
    return fc.Graph("trip", book_flight, book_hotel, rent_car)


async def main(car_ok: bool) -> int:
    async with fc.Engine() as engine:
        try:
            out = await engine.run(build(), {"trip": "LIS-2026", "car_ok": car_ok})
        except LookupError as exc:
            print(f"saga failed: {exc}")
            for line in LEDGER:
                print("  " + line)
            return 1
    print(f"trip booked: {out['flight']}, {out['hotel']}, {out['car']}")
    return 0


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    sys.exit(anyio.run(main, "--car-ok" in sys.argv))
