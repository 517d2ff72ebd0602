#!/usr/bin/env python3
"""Write an ebbsocks configuration with 1,000 generated [[access.rules]].

    python3 docs/bench/access_rules_1000.py --listen 127.0.0.1:1081 > /tmp/rules1000.toml
    python3 docs/bench/access_rules_1000.py --listen 127.0.0.1:1080 --rules 0 > /tmp/rules0.toml

The rules mix what a large deployment has: IPv4 ranges (/16, /24, single
hosts), IPv6 ranges, exact names, wildcard names, and rules without
destinations (client ranges + ports). None of them matches a CONNECT from
127.0.0.1 to 127.0.0.1 (the `pulse rate` echo server): ranges stay inside
11.0.0.0-99.255.255.255 and 2001:db8::/32, client ranges inside 10.0.0.0/8.
So every benchmark request is allowed by `default = "allow"` after the
rules were consulted; on a loopback listen, `private_destinations = "auto"`
allows the loopback target.
"""

import argparse
import random


def rule(i, rng):
    action = rng.choice(["allow", "deny"])
    lines = [f'[[access.rules]]', f'name = "r{i}"', f'action = "{action}"']
    kind = i % 10
    if kind <= 2:
        a, b, c = rng.randint(11, 99), rng.randint(0, 255), rng.randint(0, 255)
        cidr = rng.choice([f"{a}.{b}.0.0/16", f"{a}.{b}.{c}.0/24", f"{a}.{b}.{c}.{rng.randint(0, 255)}"])
        lines.append(f'destinations = ["{cidr}"]')
    elif kind == 3:
        lines.append(f'destinations = ["2001:db8:{rng.randint(0, 65535):x}::/48"]')
        lines.append('ports = ["22", "8000-8100"]')
    elif kind <= 6:
        lines.append(f'destinations = ["host{i}.zone{rng.randint(0, 99)}.example"]')
    elif kind <= 8:
        lines.append(f'destinations = ["*.zone{rng.randint(100, 199)}.example"]')
        if rng.random() < 0.5:
            lines.append('ports = ["22", "8000-8100"]')
    else:
        lines.append(f'clients = ["10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24"]')
        lines.append('ports = ["22", "8000-8100"]')
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:1080")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print("[server]")
    print(f'listen = "{args.listen}"')
    print()
    print("[logging]")
    print("access_log = false")
    print()
    print("[access]")
    print('private_destinations = "auto"')
    print('default = "allow"')
    for i in range(args.rules):
        print()
        print(rule(i, rng))


if __name__ == "__main__":
    main()
