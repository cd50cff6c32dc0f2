#!/usr/bin/env python3
"""Writes the captures the tests and benchmarks use (deterministic; re-run to regenerate).

mixed.pcap: Ethernet, 64 packets: TCP to ports 22/80/443/8080, UDP DNS, ICMP echo, IPv6 TCP
and UDP, an ARP frame (skipped by lpctl), from 16 sources, some with HTTP payloads.

udp8.pcap: raw IP, one IPv4/UDP datagram to port 7100 with the 8-byte payload "0000000\n":
the shape of the datagrams the VM suite's peer sends (tests/vm/lib.sh udp_send), for comparing
the kernel's fuel per call with lpctl run's (tests/vm/scenarios/25-fuel.sh).

nat.pcap: Ethernet, 48 packets with valid checksums through the router of examples/nat.lua:
client 10.0.1.2 to the public 10.0.3.2 (TCP with HTTP, UDP, ICMP echo), the server 10.0.2.2's
answers, and a quarter of traffic NAT leaves alone (client to 10.0.2.1).
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

def with_l4_csum(ip):
    """Fills the TCP/UDP/ICMP checksum of an IPv4 packet made by ipv4()."""
    proto, src, dst, l4 = ip[9], ip[12:16], ip[16:20], bytearray(ip[20:])
    off = {6: 16, 17: 6, 1: 2}[proto]
    pseudo = b"" if proto == 1 else src + dst + struct.pack("!BBH", 0, proto, len(l4))
    l4[off:off + 2] = b"\0\0"
    c = csum(bytes(pseudo) + bytes(l4)) or (0xffff if proto == 17 else 0)
    l4[off:off + 2] = struct.pack("!H", c)
    return ip[:20] + bytes(l4)

def nat():
    client, public, server, router = [10, 0, 1, 2], [10, 0, 3, 2], [10, 0, 2, 2], [10, 0, 2, 1]
    frames = []
    for i in range(48):
        k = i % 8
        if k in (0, 1):
            ip = ipv4(client, public, 6, tcp(40000 + i, 80, 0x18, b"GET / HTTP/1.0\r\n\r\n"), i)
        elif k == 2:
            ip = ipv4(server, client, 6, tcp(80, 40000 + i, 0x18, b"HTTP/1.0 200 OK\r\n\r\nhello"), i)
        elif k == 3:
            ip = ipv4(client, public, 17, udp(5000 + i, 5353, b"query"), i)
        elif k == 4:
            ip = ipv4(server, client, 1, icmp_echo(7, i)[:0] + struct.pack("!BBHHH", 0, 0, 0, 7, i) + b"ping" * 8, i)
        elif k == 5:
            ip = ipv4(client, public, 1, icmp_echo(7, i), i)
        else:
            ip = ipv4(client, router, 17, udp(5000 + i, 53, b"other"), i)
        frames.append(eth(with_l4_csum(ip), 0x0800))
    return frames

if __name__ == "__main__":
    out = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(out, "mixed.pcap"), mixed())
    write(os.path.join(out, "nat.pcap"), nat())
    write(os.path.join(out, "udp8.pcap"), [ipv4([10, 99, 0, 2], [10, 99, 0, 1], 17, udp(40000, 7100, b"0000000\n"))], 101)
