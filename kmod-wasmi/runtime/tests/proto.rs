//! `lp.proto` (guest-lua/c/lib/lp_proto.c), Lua-defined protocols, read side: the shipped TFTP and
//! DNS examples parsed field by field (single-bit and 4-bit fields included), fields at any bit
//! alignment, offsets and lengths given by functions, `:as` on `lp.bytes` and on payload views,
//! `lp.proto.detect`, and each definition-time error. Each script asserts in Lua and returns
//! `lp.ACCEPT`.
mod common;
use common::*;
use runtime::{Meta, SlicePacket, Verdict};

const TFTP: &str = include_str!("../../../examples/proto/tftp.lua");
const DNS: &str = include_str!("../../../examples/proto/dns.lua");

/// Loads `defs` (top level), then runs `body` as process_packet(pkt) on each packet.
fn check(defs: &str, body: &str, packets: &[Vec<u8>]) {
    let mut s = load(&format!(
        "{defs}\n{PRELUDE}\nfunction process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend"
    ));
    for p in packets {
        accept(&mut s, p);
    }
}

fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4(
        17,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &udp(sport, dport, payload),
    )
}

#[test]
fn tftp_rrq_and_data() {
    let rrq = udp4(40000, 69, b"\x00\x01/srv/boot.img\x00octet\x00");
    check(
        TFTP,
        r##"
        eq(lp.proto.detect(pkt), "tftp", "detect")
        local v = pkt.udp.payload:as("tftp")
        eq(v.opcode, 1, "opcode")
        eq(v.block, nil, "no block in a request")
        eq(#v, 22, "#v")
        local file, mode = tftp_request(v)
        eq(file, "/srv/boot.img", "filename")
        eq(mode, "octet", "mode")
        eq(tostring(v.payload), "/srv/boot.img\0octet\0", "payload")
        eq(getmetatable(v.payload), "lp.bytes", "payload is lp.bytes")
        eq(v.proto, lp.proto.get("tftp"), "proto")
        eq(v.proto.name, "tftp", "proto name")
        "##,
        std::slice::from_ref(&rrq),
    );
    let mut data = b"\x00\x03\x01\x02".to_vec();
    data.extend_from_slice(&[0xaa; 512]);
    check(
        TFTP,
        r##"
        local v = pkt.udp.payload:as("tftp")
        eq(v.opcode, 3, "opcode")
        eq(v.block, 0x0102, "block")
        eq(v.errcode, nil, "no errcode")
        eq(#v.payload, 512, "data length")
        eq(v.payload[512], 0xaa, "data")
        eq(tftp_request(v), nil, "not a request")
        "##,
        &[udp4(40000, 69, &data)],
    );
    // the example's own process_packet: a write request is dropped, a read accepted
    let mut s = load(TFTP);
    accept(&mut s, &rrq);
    let wrq = udp4(40000, 69, b"\x00\x02x\x00octet\x00");
    let o = s.run(
        0,
        0,
        &SlicePacket {
            data: &wrq,
            meta: Meta::default(),
        },
    );
    assert_eq!(o.verdict, Verdict::Drop, "{}", s.message(0));
}

#[test]
fn dns_query_and_response() {
    // query: id 0xbeef, rd, one question
    let query = udp4(
        5353,
        53,
        b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
    );
    check(
        DNS,
        r##"
        eq(lp.proto.detect(pkt), "dns", "detect")
        local h = pkt.udp.payload:as("dns")
        eq(h.id, 0xbeef, "id")
        eq(h.qr, 0, "qr") eq(h.opcode, 0, "opcode") eq(h.aa, 0, "aa") eq(h.tc, 0, "tc")
        eq(h.rd, 1, "rd") eq(h.ra, 0, "ra") eq(h.z, 0, "z") eq(h.rcode, 0, "rcode")
        eq(h.qdcount, 1, "qdcount") eq(h.ancount, 0, "ancount")
        eq(h.nscount, 0, "nscount") eq(h.arcount, 0, "arcount")
        eq(tostring(h.payload):sub(1, 8), "\7example", "question")
        "##,
        &[query],
    );
    // response: qr, opcode 2 (status), aa, tc, rd, ra, z 5, rcode 3 (NXDOMAIN), counts 1..4
    let resp = udp4(
        53,
        5353,
        b"\x12\x34\x97\xd3\x00\x01\x00\x02\x00\x03\x00\x04",
    );
    check(
        DNS,
        r##"
        local h = pkt.udp.payload:as("dns")
        eq(h.id, 0x1234, "id")
        eq(h.qr, 1, "qr") eq(h.opcode, 2, "opcode") eq(h.aa, 1, "aa") eq(h.tc, 1, "tc")
        eq(h.rd, 1, "rd") eq(h.ra, 1, "ra") eq(h.z, 5, "z") eq(h.rcode, 3, "rcode")
        eq(h.qdcount, 1, "qdcount") eq(h.ancount, 2, "ancount")
        eq(h.nscount, 3, "nscount") eq(h.arcount, 4, "arcount")
        eq(#h.payload, 0, "empty payload")
        -- a truncated header: fields past the end are nil
        local t = lp.bytes.hex("1234 97"):as("dns")
        eq(t.id, 0x1234, "short id") eq(t.rcode, nil, "short rcode") eq(t.arcount, nil, "short arcount")
        eq(t.payload, nil, "short payload")
        "##,
        std::slice::from_ref(&resp),
    );
    let mut s = load(DNS);
    accept(&mut s, &resp);
}

#[test]
fn unaligned_fields_and_functions() {
    check(
        r##"
        lp.proto.define{
          name = "odd",
          fields = {
            {name = "a", offset = 3, bits = 5},
            {name = "b", offset = 8, bits = 13},   -- across two bytes
            {name = "c", offset = 21, bits = 32},  -- 32 bits across five bytes
            {name = "d", offset = 53, bits = 1},
            {name = "e", offset = 54, bits = 2},
          },
        }
        -- a TCP-like header: a 4-bit length in 32-bit words, options of that length
        lp.proto.define{
          name = "tlv",
          fields = {
            {name = "hlen", offset = 0, bits = 4},
            {name = "kind", offset = 4, bits = 4},
            {name = "last", offset = function(v) return v.hlen * 32 - 16 end, bits = 16},
            {name = "var", offset = 8, bits = function(v) return v.kind end},
          },
          payload = function(v) return v.hlen and v.hlen * 32 end,
        }
        "##,
        r##"
        -- bits: 101 10110 | 1100 1010 0101 1 | ... built by hand
        local bits = "000" .. "10110" .. "1100101001011" .. string.rep("10", 16) .. "1" .. "10" .. "11111111"
        assert(#bits == 64)
        local s = {}
        for i = 1, 64, 8 do s[#s + 1] = string.char(tonumber(bits:sub(i, i + 7), 2)) end
        local v = lp.bytes(table.concat(s)):as("odd")
        eq(v.a, 22, "a") eq(v.b, tonumber("1100101001011", 2), "b")
        eq(v.c, 0xaaaaaaaa, "c") eq(v.d, 1, "d") eq(v.e, 2, "e")
        eq(#v, 8, "#v")
        eq(#v.payload, 1, "default payload: after the last fixed field, byte-aligned")
        eq(v.f, nil, "unknown field")
        eq(v[1], nil, "integer key")
        eq(tostring(v), "odd view: 8 bytes", "tostring")
        eq(v:bytes(), lp.bytes(table.concat(s)), "bytes")
        -- writes at any alignment touch their bits only
        local before = v:bytes()
        v.a = 9 eq(v.a, 9, "a written") eq(v.b, tonumber("1100101001011", 2), "b kept")
        v.c = 0x12345678 eq(v.c, 0x12345678, "c written") eq(v.d, 1, "d kept") eq(v.b, tonumber("1100101001011", 2), "b kept")
        v.e = 1 eq(v.e, 1, "e written") eq(v.d, 1, "d kept")
        v.a = 22 v.c = 0xaaaaaaaa v.e = 2
        eq(v:bytes(), before, "restored bit for bit")
        fails(function() v.a = 32 end, "does not fit in 5 bits")
        fails(function() v.payload = 1 end, "no field 'payload'")

        local t = lp.bytes.hex("2c ff ff 00 00 00 12 34 ab cd"):as("tlv")
        eq(t.hlen, 2, "hlen") eq(t.kind, 12, "kind")
        eq(t.last, 0x1234, "last, at a computed offset")
        eq(t.var, 0xfff, "var, of a computed length")
        eq(tostring(t.payload), "\xab\xcd", "computed payload")
        eq(lp.bytes.hex("5c ff"):as("tlv").last, nil, "computed offset past the end")
        eq(lp.bytes.hex(""):as("tlv").payload, nil, "payload of nothing")
        fails(function() return lp.bytes.hex("0c"):as("tlv").last end, "tlv: field 'last': invalid offset -16")
        fails(function() return lp.bytes.hex("20 00 00 00"):as("tlv").var end, "invalid offset 8 or bits 0")
        fails(function() return lp.bytes("x"):as("nope") end, "unknown protocol 'nope'")
        fails(function() return lp.bytes("x"):as(5) end, "protocol name expected")
        -- :as takes the protocol object as well
        eq(lp.bytes.hex("ff"):as(lp.proto.get("odd")).a, 31, "as(proto)")
        eq(lp.proto.get("missing"), nil, "get missing")
        eq(tostring(lp.proto.get("odd")), "proto: odd", "proto tostring")
        "##,
        &[tcp4(80)],
    );
}

#[test]
fn payload_views_and_detect() {
    check(
        r##"
        lp.proto.define{
          name = "first", fields = {{name = "x", offset = 0, bits = 8}},
          detect = function(pkt) return pkt.tcp and pkt.tcp.dport == 1 end,
        }
        lp.proto.define{name = "nodetect", fields = {{name = "x", offset = 0, bits = 8}}}
        lp.proto.define{
          name = "second", fields = {{name = "y", offset = 4, bits = 8}},
          detect = function(pkt) return pkt.udp ~= nil end,
        }
        lp.proto.define{
          name = "third", fields = {{name = "z", offset = 0, bits = 8}},
          detect = function(pkt) return true end,
        }
        kept = nil
        "##,
        r##"
        if pkt.udp then
          eq(lp.proto.detect(pkt), "second", "first true detect, in order")
          local v = pkt.udp.payload:as("second")
          eq(v.y, 0x12, "y from the payload view")
          eq(tostring(v.payload), "\x45", "payload: after y, byte-aligned")
          kept = v -- a view is a copy: it outlives its call
          keptpay = pkt.udp.payload -- a payload view does not
        else
          eq(lp.proto.detect(pkt), "third", "fallback")
          eq(kept.y, 0x12, "kept view")
          fails(function() return keptpay:as("second") end, "packet used outside of its call")
          eq(pkt.tcp.payload:as("second").y, nil, "empty payload")
        end
        "##,
        &[udp4(1, 2, b"\x01\x23\x45"), tcp4(80)],
    );
}

#[test]
fn definition_errors() {
    check(
        "",
        r##"
        local D = lp.proto.define
        local function f(n, o, b) return {name = n, offset = o, bits = b} end
        fails(function() D{fields = {}} end, "lp.proto.define: name (a non-empty string) expected")
        fails(function() D{name = "p"} end, "p: fields (a table) expected")
        fails(function() D{name = "p", fields = {5}} end, "p: field 1 must be a table")
        fails(function() D{name = "p", fields = {{offset = 0, bits = 8}}} end, "p: field 1 has no name")
        fails(function() D{name = "p", fields = {f("a", 0, 8), f("a", 8, 8)}} end, "p: duplicate field 'a'")
        fails(function() D{name = "p", fields = {f("a", 0, 0)}} end, "field 'a': bits 0 outside 1..32")
        fails(function() D{name = "p", fields = {f("a", 0, 33)}} end, "field 'a': bits 33 outside 1..32")
        fails(function() D{name = "p", fields = {f("a", 0)}} end, "field 'a': bits must be an integer")
        fails(function() D{name = "p", fields = {f("a", -8, 8)}} end, "field 'a': negative offset -8")
        fails(function() D{name = "p", fields = {f("a", "x", 8)}} end, "field 'a': offset must be")
        fails(function() D{name = "p", fields = {f("a", 0, 8), f("b", 7, 2)}} end, "fields 'a' and 'b' overlap")
        fails(function() D{name = "p", fields = {f("a", 0, 16), f("b", 4, 4)}} end, "fields 'a' and 'b' overlap")
        for _, m in ipairs{"payload", "proto", "bytes"} do
          fails(function() D{name = "p", fields = {f(m, 0, 8)}} end, "field '" .. m .. "' clashes")
        end
        fails(function() D{name = "p", fields = {}, payload = 4} end, "payload offset 4 is not")
        fails(function() D{name = "p", fields = {}, payload = "a"} end, "payload must be a bit offset")
        fails(function() D{name = "p", fields = {}, detect = 1} end, "detect must be a function")
        eq(lp.proto.get("p"), nil, "nothing defined by failures")
        -- adjacent fields do not overlap
        local p = D{name = "p", fields = {f("a", 0, 8), f("b", 8, 8)}}
        eq(p.name, "p", "defined")
        fails(function() D{name = "p", fields = {}} end, "protocol 'p' already defined")
        "##,
        &[tcp4(80)],
    );
}
