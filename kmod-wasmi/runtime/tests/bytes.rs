//! `lp.bytes`, the owned byte array (guest-lua/c/lib/lp_bytes.c): constructors, indexing, `sub`,
//! `find`, integer readers and writers in both byte orders, concatenation, equality, hex, the
//! errors of each, and payload views copied with `lp.bytes` and kept past their call. Each
//! script asserts in Lua and returns `lp.ACCEPT`.
mod common;
use common::*;

/// `body` becomes process_packet(pkt) (followed by `return lp.ACCEPT`) and runs on a packet.
fn check(body: &str) {
    let mut s = load(&format!(
        "{PRELUDE}\nfunction process_packet(pkt)\n{body}\nreturn lp.ACCEPT\nend"
    ));
    accept(&mut s, &tcp4(80));
}

#[test]
fn constructors_length_and_tostring() {
    check(
        r##"
        local b = lp.bytes("ab\0c")
        eq(#b, 4, "#b")
        eq(tostring(b), "ab\0c", "tostring")
        eq(type(b), "userdata", "type")
        eq(#lp.bytes(""), 0, "empty")
        eq(tostring(lp.bytes(b)), "ab\0c", "copy of bytes")
        local n = lp.bytes.new(3)
        eq(tostring(n), "\0\0\0", "new zero")
        eq(tostring(lp.bytes.new(2, 0x41)), "AA", "new fill")
        eq(#lp.bytes.new(0), 0, "new 0")
        fails(function() return lp.bytes.new(-1) end, "invalid length -1")
        fails(function() return lp.bytes.new(2, 256) end, "fill 256 out of range")
        fails(function() return lp.bytes(12) end, "got number")
        fails(function() return lp.bytes({}) end, "got table")
        fails(function() return lp.bytes() end, "got no value")
        eq(getmetatable(b), "lp.bytes", "metatable protected")
        eq(getmetatable(lp.bytes), "lp.bytes", "constructor metatable protected")
        -- a copy is independent of its source
        local c = lp.bytes(b)
        c[1] = 0x7a
        eq(b[1], 0x61, "source unchanged")
        "##,
    );
}

#[test]
fn hex_parsing_and_round_trip() {
    check(
        r##"
        local b = lp.bytes.hex("de ad:be-ef")
        eq(#b, 4, "#hex")
        eq(b:hex(), "deadbeef", "hex out")
        eq(lp.bytes.hex("DEADBEEF"):hex(), "deadbeef", "upper case in, lower case out")
        eq(#lp.bytes.hex(""), 0, "empty hex")
        eq(#lp.bytes.hex(" : - "), 0, "separators only")
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local s = table.concat(all)
        local x = lp.bytes(s)
        eq(#x:hex(), 512, "hex length")
        eq(tostring(lp.bytes.hex(x:hex())), s, "round trip")
        eq(lp.bytes.hex(x:hex()) == x, true, "round trip equal")
        fails(function() return lp.bytes.hex("abc") end, "odd number of hex digits in 'abc'")
        fails(function() return lp.bytes.hex("de ad:b") end, "'de ad:b'")
        fails(function() return lp.bytes.hex("zz") end, "invalid hex digit at position 1 in 'zz'")
        fails(function() return lp.bytes.hex("0x12") end, "in '0x12'")
        fails(function() return lp.bytes.hex(nil) end, "string expected")
        "##,
    );
}

#[test]
fn indexing_reads_and_writes() {
    check(
        r##"
        local b = lp.bytes("\1\2\255")
        eq(b[1], 1, "b[1]")
        eq(b[3], 255, "b[3]")
        eq(b[0], nil, "b[0]")
        eq(b[4], nil, "b[4]")
        eq(b[-1], nil, "b[-1]")
        eq(b[2.0], 2, "float integral key")
        eq(b[1.5], nil, "fractional key")
        eq(b.nosuch, nil, "unknown name")
        eq(b[true], nil, "boolean key")
        b[2] = 0x80
        eq(b[2], 0x80, "written")
        b[1] = 0
        b[3] = 255
        eq(tostring(b), "\0\128\255", "after writes")
        fails(function() b[4] = 1 end, "index 4 out of range (1..3)")
        fails(function() b[0] = 1 end, "index 0 out of range")
        fails(function() b[1] = 256 end, "value 256 out of range 0..255")
        fails(function() b[1] = -1 end, "value -1 out of range 0..255")
        fails(function() b[1] = "x" end, "got string")
        fails(function() b[1] = 1.5 end, "got number")
        fails(function() b.x = 1 end, "index must be an integer, got string")
        "##,
    );
}

#[test]
fn sub_follows_string_sub() {
    check(
        r##"
        local s = "hello, world"
        local b = lp.bytes(s)
        local cases = {{1}, {5}, {-5}, {0}, {-100}, {100}, {1, 5}, {3, -3}, {-3, -1}, {5, 2},
                       {0, 0}, {1, 0}, {-100, 3}, {2, 100}, {13}, {12, 12}}
        for _, c in ipairs(cases) do
          local got = b:sub(c[1], c[2])
          eq(getmetatable(got), "lp.bytes", "sub returns bytes")
          eq(tostring(got), s:sub(c[1], c[2]), "sub(" .. tostring(c[1]) .. ", " .. tostring(c[2]) .. ")")
        end
        fails(function() return b:sub() end, "number expected")
        fails(function() return b.sub("x", 1) end, "lp.bytes expected")
        "##,
    );
}

#[test]
fn find_plain_and_patterns() {
    check(
        r##"
        local s = "GET /index.html HTTP/1.1\r\n"
        local b = lp.bytes(s)
        local function same(a, b2, what)
          eq(a.n, b2.n, what .. " count")
          for i = 1, a.n do eq(a[i], b2[i], what .. " #" .. i) end
        end
        for _, c in ipairs({{"HTTP"}, {"HTTP", 10}, {"HTTP", 20}, {"", 1}, {"", 27}, {"", 28},
                            {"nothere"}, {"G", -26}, {"1", -1}, {".", 1}}) do
          same(table.pack(b:find(c[1], c[2], true)), table.pack(s:find(c[1], c[2], true)),
               "plain " .. c[1] .. " " .. tostring(c[2]))
        end
        for _, c in ipairs({{"H%a+"}, {"(%d)%.(%d)"}, {"/(%w+)%.(%w+)"}, {"^GET"}, {"^index"},
                            {".", 5}, {"%s", -3}}) do
          same(table.pack(b:find(c[1], c[2])), table.pack(s:find(c[1], c[2])), "pattern " .. c[1])
        end
        -- a bytes needle
        eq(b:find(lp.bytes("HTTP"), 1, true), 17, "bytes needle plain")
        eq(select(2, b:find(lp.bytes("index"))), 10, "bytes needle pattern")
        -- binary data
        local bin = lp.bytes.hex("00 01 02 00 01 02 03")
        local i, j = bin:find("\1\2\3", 1, true)
        eq(i, 5, "binary start")
        eq(j, 7, "binary end")
        fails(function() return b:find({}) end, "string or bytes expected, got table")
        fails(function() return b:find("[") end, "malformed pattern")
        -- the string global does not matter
        local find = string.find
        string.find = function() error("replaced") end
        local ok, r = pcall(b.find, b, "H%a+")
        string.find = find
        eq(ok, true, "original string.find: " .. tostring(r))
        eq(r, 17, "original string.find")
        "##,
    );
}

#[test]
fn integer_readers_both_byte_orders() {
    check(
        r##"
        local b = lp.bytes.hex("01 02 03 04 ff fe")
        eq(b:u8(1), 1, "u8(1)")
        eq(b:u8(6), 0xfe, "u8(6)")
        eq(b:u16(1), 0x0102, "u16 be")
        eq(b:u16(1, "be"), 0x0102, "u16 explicit be")
        eq(b:u16(1, "le"), 0x0201, "u16 le")
        eq(b:u16(5), 0xfffe, "u16 at end")
        eq(b:u16(5, "le"), 0xfeff, "u16 le at end")
        eq(b:u32(1), 0x01020304, "u32 be")
        eq(b:u32(1, "le"), 0x04030201, "u32 le")
        eq(b:u32(3), 0x0304fffe, "u32 be high bit")
        eq(b:u32(3, "le"), 0xfeff0403, "u32 le high bit: no sign")
        fails(function() return b:u8(0) end, "u8: offset 0 out of range for 6 bytes")
        fails(function() return b:u8(7) end, "u8: offset 7 out of range")
        fails(function() return b:u16(6) end, "u16: offset 6 out of range for 6 bytes")
        fails(function() return b:u32(4) end, "u32: offset 4 out of range")
        fails(function() return b:u32(-1) end, "u32: offset -1 out of range")
        fails(function() return b:u16(1, "middle") end, "byte order must be \"le\" or \"be\", got 'middle'")
        fails(function() return lp.bytes(""):u8(1) end, "offset 1 out of range for 0 bytes")
        "##,
    );
}

#[test]
fn integer_writers_both_byte_orders() {
    check(
        r##"
        local b = lp.bytes.new(8)
        b:set_u8(1, 0xab)
        b:set_u16(2, 0x0102)
        b:set_u16(4, 0x0102, "le")
        eq(b:hex(), "ab010202010000" .. "00", "u8 and u16")
        b:set_u32(5, 0xdeadbeef, "le")
        eq(b:hex(), "ab010202efbeadde", "u32 le")
        eq(b:u32(5, "le"), 0xdeadbeef, "u32 le read back")
        b:set_u32(1, 0xffffffff)
        b:set_u32(5, 0x01020304, "be")
        eq(b:hex(), "ffffffff01020304", "u32 be")
        b:set_u16(7, 0)
        b:set_u8(8, 255)
        eq(b:u16(7), 0x00ff, "u16 after u8")
        fails(function() b:set_u8(1, 256) end, "set_u8: value 256 out of range 0..255")
        fails(function() b:set_u8(1, -1) end, "set_u8: value -1 out of range")
        fails(function() b:set_u16(1, 65536) end, "set_u16: value 65536 out of range 0..65535")
        fails(function() b:set_u32(1, 4294967296) end, "set_u32: value 4294967296 out of range 0..4294967295")
        fails(function() b:set_u32(1, -1, "le") end, "set_u32: value -1")
        fails(function() b:set_u8(9, 0) end, "set_u8: offset 9 out of range for 8 bytes")
        fails(function() b:set_u16(8, 0) end, "set_u16: offset 8 out of range")
        fails(function() b:set_u32(6, 0, "le") end, "set_u32: offset 6 out of range")
        fails(function() b:set_u32(0, 0) end, "set_u32: offset 0 out of range")
        fails(function() b:set_u16(1, 0, "LE") end, "got 'LE'")
        fails(function() b:set_u16(1, 1.5) end, "number has no integer representation")
        eq(b:hex(), "ffffffff010200ff", "failed writes change nothing")
        "##,
    );
}

#[test]
fn concatenation_and_equality() {
    check(
        r##"
        local a, b = lp.bytes("ab"), lp.bytes.hex("00 ff")
        local ab = a .. b
        eq(getmetatable(ab), "lp.bytes", "bytes .. bytes")
        eq(tostring(ab), "ab\0\255", "bytes .. bytes value")
        local r = a .. "cd"
        eq(getmetatable(r), "lp.bytes", "bytes .. string")
        eq(tostring(r), "abcd", "bytes .. string value")
        local l = "xy" .. a
        eq(getmetatable(l), "lp.bytes", "string .. bytes")
        eq(tostring(l), "xyab", "string .. bytes value")
        eq(tostring("x" .. a .. "y" .. b), "xaby\0\255", "chain")
        eq(tostring(a .. 1), "ab1", "number")
        eq(#(lp.bytes("") .. ""), 0, "empty")
        fails(function() return a .. {} end, "concatenate bytes with a table value")
        fails(function() return true .. a end, "concatenate a boolean value with bytes")
        eq(lp.bytes("ab") == a, true, "equal contents")
        eq(lp.bytes("ab") ~= a, false, "not unequal")
        eq(lp.bytes("ac") == a, false, "different contents")
        eq(lp.bytes("abc") == a, false, "different length")
        eq(lp.bytes("") == lp.bytes.new(0), true, "empty equal")
        eq(a == "ab", false, "a string is not bytes")
        eq(a == lp.cidr("10.0.0.0/8"), false, "other userdata")
        local t = {[a] = 1}
        eq(t[lp.bytes("ab")], nil, "table keys are by identity")
        "##,
    );
}

#[test]
fn payload_views_convert() {
    let mut s = load(&format!(
        "{PRELUDE}\nfunction process_packet(pkt)\n\
           local b = lp.bytes(pkt.tcp and pkt.tcp.payload or pkt.udp.payload)\n\
           eq(getmetatable(b), 'lp.bytes', 'a copy')\n\
           eq(tostring(b), tostring(pkt.tcp and pkt.tcp.payload or pkt.udp.payload), 'contents')\n\
           b[1] = 0x2a\n\
           eq(b[1], 0x2a, 'the copy is writable')\n\
           fails(function() return lp.bytes(pkt) end, 'string, bytes or payload expected, got packet')\n\
           fails(function() return lp.bytes(pkt.tcp or pkt.udp) end, 'got tcp')\n\
           fails(function() return lp.bytes(pkt) end, 'bad argument #1')\n\
           return lp.ACCEPT\nend"
    ));
    accept(
        &mut s,
        &ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp(1, 2, 0x18, b"hello")),
    );
    let mut s = load(&format!(
        "{PRELUDE}\nfunction process_packet(pkt)\n\
           local b = lp.bytes(pkt.udp.payload)\n\
           eq(b:hex(), '0102030405', 'udp payload')\n\
           fails(function() return lp.bytes(pkt.udp) end, 'got udp')\n\
           return lp.ACCEPT\nend"
    ));
    accept(
        &mut s,
        &ipv4(
            17,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &udp(1, 2, &[1, 2, 3, 4, 5]),
        ),
    );
    // a payload beyond the host's window is copied whole
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut s = load(&format!(
        "{PRELUDE}\nfunction process_packet(pkt)\n\
           local b = lp.bytes(pkt.tcp.payload)\n\
           eq(#b, 5000, 'length')\n\
           for i = 1, #b, 97 do eq(b[i], (i - 1) % 251, 'byte ' .. i) end\n\
           eq(b:sub(-3) == lp.bytes(pkt.tcp.payload:sub(-3)), true, 'tail')\n\
           return lp.ACCEPT\nend"
    ));
    accept(
        &mut s,
        &ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp(1, 2, 0x18, &big)),
    );
}

#[test]
fn copied_payload_outlives_its_call() {
    let mut s = load(&format!(
        "{PRELUDE}\nkept = nil\n\
         function process_packet(pkt)\n\
           if kept == nil then\n\
             kept = lp.bytes(pkt.tcp.payload)\n\
           else\n\
             eq(tostring(kept), 'first', 'kept copy')\n\
             eq(kept:u8(1), 0x66, 'read')\n\
             eq((kept .. pkt.tcp.payload:sub(1, 3)):hex(), '6669727374' .. lp.bytes(pkt.tcp.payload:sub(1, 3)):hex(), 'concat')\n\
             eq(kept == lp.bytes(pkt.tcp.payload), false, 'a different payload')\n\
           end\n\
           return lp.ACCEPT\nend"
    ));
    let pkt = |p: &[u8]| ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp(1, 2, 0x18, p));
    accept(&mut s, &pkt(b"first"));
    accept(&mut s, &pkt(b"second"));
    accept(&mut s, &pkt(b"third!"));
}
