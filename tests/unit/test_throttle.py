"""The login throttle's rules, with a clock the test moves."""

from __future__ import annotations

from speicher.access.throttle import Policy, Throttle, address_key, user_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**policy: float) -> tuple[Throttle, Clock]:
    clock = Clock()
    values: dict[str, float] = {
        "limit": 3,
        "window": 60,
        "base_lockout": 10,
        "max_lockout": 40,
        "forget": 300,
    }
    values.update(policy)
    return Throttle(Policy(**values), clock), clock  # type: ignore[arg-type]


def test_locks_after_limit_failures_within_the_window_and_reports_once() -> None:
    throttle, clock = make()
    assert throttle.failed("user:a") == []
    assert throttle.failed("user:a") == []
    assert throttle.locked("user:a") == 0
    lockouts = throttle.failed("user:a")
    assert [(lo.key, lo.seconds, lo.failures) for lo in lockouts] == [("user:a", 10, 3)]
    assert throttle.locked("user:a") == 10
    clock.now += 4
    assert throttle.locked("user:a", "address:1.2.3.4") == 6
    clock.now += 6
    assert throttle.locked("user:a") == 0


def test_failures_outside_the_window_do_not_add_up() -> None:
    throttle, clock = make()
    for _ in range(10):
        assert throttle.failed("user:a") == []
        clock.now += 31  # two per window at most
    assert throttle.locked("user:a") == 0


def test_lockouts_grow_up_to_the_maximum_and_are_forgotten_after_quiet() -> None:
    throttle, clock = make()
    seconds = []
    for _ in range(4):
        for _ in range(3):
            lockouts = throttle.failed("address:9.9.9.9")
        seconds.append(lockouts[0].seconds)
        clock.now += lockouts[0].seconds
    assert seconds == [10, 20, 40, 40]
    clock.now += 301
    assert [throttle.failed("address:9.9.9.9") for _ in range(3)][-1][0].seconds == 10


def test_success_clears_and_keys_are_independent() -> None:
    throttle, _ = make()
    throttle.failed("user:a", "address:1.1.1.1")
    throttle.failed("user:a", "address:1.1.1.1")
    throttle.succeeded("user:a")
    throttle.failed("user:a", "address:1.1.1.1")
    assert throttle.locked("user:a") == 0
    assert throttle.locked("address:1.1.1.1") == 10
    assert throttle.locked("user:b") == 0


def test_the_table_is_bounded() -> None:
    throttle, _ = make(max_keys=100)
    for n in range(1000):
        throttle.failed(user_key(f"random{n}"))
    assert len(throttle) == 100


def test_address_keys() -> None:
    assert address_key("192.0.2.7") == "address:192.0.2.7"
    assert (
        address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == ("address:2001:db8::/64")
    )
    assert address_key("::ffff:192.0.2.7") == "address:192.0.2.7"
    assert address_key(None) == "address:unknown"
    assert user_key("Admin") == "user:admin"
