#!/usr/bin/env python3
"""Writes the captures the tests and benchmarks use (deterministic; re-run to regenerate).

mixed.pcap: Ethernet, 64 packets: TCP to ports 22/80/443/8080, UDP DNS, ICMP echo, IPv6 TCP
and UDP, an ARP frame (skipped by lpctl), from 16 sources, some with HTTP payloads.
"""
import struct, sys, os

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ipv4(src, dst, proto, l4, ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, proto, 0, bytes(src), bytes(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4

def ipv6(src, dst, nh, l4):
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), nh, 64, bytes(src), bytes(dst)) + l4

def tcp(sport, dport, flags=0x02, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload

def udp(sport, dport, payload=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload

def icmp_echo(ident, seq):
    return struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping" * 8

def eth(payload, ethertype):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ethertype) + payload

def write(path, frames, linktype=1):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(fr), len(fr)) + fr)

def mixed():
    frames = []
    ports = [22, 80, 443, 8080]
    for i in range(64):
        src = [10, 0, 0, 1 + i % 16]
        dst = [10, 0, 1, 1]
        k = i % 8
        if k < 4:
            body = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n" if ports[k] == 80 else b""
            frames.append(eth(ipv4(src, dst, 6, tcp(40000 + i, ports[k], 0x18 if body else 0x02, body), i), 0x0800))
        elif k == 4:
            frames.append(eth(ipv4(src, dst, 17, udp(5353, 53, b"\x12\x34\x01\x00\x00\x01" + b"\0" * 6), i), 0x0800))
        elif k == 5:
            frames.append(eth(ipv4(src, dst, 1, icmp_echo(7, i), i), 0x0800))
        elif k == 6:
            s6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1 + i % 16])
            d6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [0xff])
            frames.append(eth(ipv6(s6, d6, 6, tcp(40000 + i, 22)), 0x86DD))
        else:
            s6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1 + i % 16])
            d6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [0xff])
            frames.append(eth(ipv6(s6, d6, 17, udp(5353, 53, b"query")), 0x86DD))
    frames.insert(9, eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20, 0x0806))
    return frames

if __name__ == "__main__":
    out = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(out, "mixed.pcap"), mixed())
