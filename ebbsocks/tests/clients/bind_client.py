#!/usr/bin/env python3
"""An independent SOCKS BIND client (Python standard library only).

Usage: bind_client.py PROXY_HOST PROXY_PORT VERSION(5|4) DST_IP DST_PORT

Prints "BOUND <ip> <port>" after the first reply and "PEER <ip> <port>"
after the second, sends b"hello from python", half-closes, then prints
"GOT <text>" with everything the peer sent until it closed. Every socket
operation times out after 10 s; any failure exits non-zero.
"""

import ipaddress
import socket
import struct
import sys

TIMEOUT = 10.0


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def socks5_reply(sock):
    ver, code, _rsv, atyp = recv_exact(sock, 4)
    if ver != 5:
        raise ValueError(f"reply version {ver}")
    if atyp == 1:
        ip = str(ipaddress.IPv4Address(recv_exact(sock, 4)))
    elif atyp == 4:
        ip = str(ipaddress.IPv6Address(recv_exact(sock, 16)))
    elif atyp == 3:
        ip = recv_exact(sock, recv_exact(sock, 1)[0]).decode()
    else:
        raise ValueError(f"reply address type {atyp}")
    (port,) = struct.unpack("!H", recv_exact(sock, 2))
    if code != 0:
        raise RuntimeError(f"SOCKS5 BIND failed with code {code}")
    return ip, port


def socks4_reply(sock, proxy_host):
    vn, cd, port, raw_ip = struct.unpack("!BBH4s", recv_exact(sock, 8))
    if vn != 0:
        raise ValueError(f"reply version {vn}")
    if cd != 0x5A:
        raise RuntimeError(f"SOCKS4 BIND failed with status {cd:#x}")
    ip = str(ipaddress.IPv4Address(raw_ip))
    # SOCKS4: an address of 0.0.0.0 means "the proxy you are talking to".
    if ip == "0.0.0.0":
        ip = proxy_host
    return ip, port


def main():
    proxy_host, proxy_port, version, dst_ip, dst_port = sys.argv[1:6]
    dst = ipaddress.IPv4Address(dst_ip)
    sock = socket.create_connection((proxy_host, int(proxy_port)), timeout=TIMEOUT)
    if version == "5":
        sock.sendall(b"\x05\x01\x00")
        if recv_exact(sock, 2) != b"\x05\x00":
            raise RuntimeError("no-auth method not accepted")
        sock.sendall(b"\x05\x02\x00\x01" + dst.packed + struct.pack("!H", int(dst_port)))

        def reply():
            return socks5_reply(sock)
    else:
        sock.sendall(b"\x04\x02" + struct.pack("!H", int(dst_port)) + dst.packed + b"py\x00")

        def reply():
            return socks4_reply(sock, proxy_host)

    print("BOUND %s %d" % reply(), flush=True)
    print("PEER %s %d" % reply(), flush=True)
    sock.sendall(b"hello from python")
    sock.shutdown(socket.SHUT_WR)
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    print("GOT " + received.decode(), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
