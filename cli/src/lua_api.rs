//! What a script sees: the globals of the sandbox, `lp`, the packet and its protocol classes.
//! One table for `lpctl script check` (unknown fields and globals) and for the LuaLS
//! annotations `lpctl script stubs` writes (`---@meta`, for editors). Tests hold it to the guest:
//! the classes' keys to `guest-lua/c/lib/lp_fields.c`, `lp` and the globals to what a script
//! finds when it runs (cli/tests/lua_api.rs).

/// A field or method of a class, or a member of `lp`: its name, LuaLS type and what it is.
pub struct Field {
    pub name: &'static str,
    pub ty: &'static str,
    pub doc: &'static str,
}

const fn f(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field { name, ty, doc }
}

/// A protocol class: the packet field that gives it (`pkt.tcp`) and its fields.
pub struct Class {
    pub key: &'static str,
    /// The LuaLS class name.
    pub class: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

/// The globals of the sandbox (Lua's base library as the guest keeps it, and its libraries).
pub const GLOBALS: &[&str] = &[
    "_G",
    "_VERSION",
    "assert",
    "collectgarbage",
    "coroutine",
    "error",
    "getmetatable",
    "ipairs",
    "load",
    "lp",
    "math",
    "next",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawlen",
    "rawset",
    "select",
    "setmetatable",
    "string",
    "table",
    "tonumber",
    "tostring",
    "type",
    "utf8",
    "warn",
    "xpcall",
];

/// The members of `lp`.
pub const LP: &[Field] = &[
    f("ACCEPT", "integer", "Verdict: accept the packet (nft's accept)."),
    f("DROP", "integer", "Verdict: drop the packet."),
    f("CONTINUE", "integer", "Verdict: go on with the rule's next statement (true and nothing do too)."),
    f("BREAK", "integer", "Verdict: the rule does not match (false does too); the chain goes on."),
    f("QUEUE", "fun(queue: integer): integer", "Verdict: queue the packet to nfqueue `queue` (not at netdev or ingress hooks)."),
    f("log", "fun(...: any)", "A line in the script's log at level info (`lpctl script log NAME`)."),
    f("debug", "fun(...: any)", "A line at level debug (not printed to the kernel log)."),
    f("warn", "fun(...: any)", "A line at level warn."),
    f("now", "fun(): integer", "The kernel's monotonic clock, nanoseconds."),
    f("cidr", "fun(prefix: string): lp.cidr", "An address prefix, `lp.cidr(\"10.0.0.0/8\"):contains(pkt.ip.saddr)`."),
    f("bytes", "lp.bytes_lib", "Byte arrays: `lp.bytes.new(n)`, `lp.bytes.from(string)`."),
    f("map", "fun(spec: table): lp.map", "Declares a map shared by all CPUs (at the script's top level): `lp.map{name=, type=\"hash\"|\"lru\", key_size=, value=\"number\"|\"bytes\", value_size=, max_entries=}`."),
    f("proto", "table", "Protocols defined in Lua (`lp.proto.define`), read with `view:as(name)`."),
    f("packet", "lp.packet_lib", "Packet builders for lp.send: `lp.packet.udp{}`, `.tcp{}`, `.icmp{}`."),
    f("send", "fun(packet: lp.bytes|string): boolean", "Sends an IP packet built by the script (bounded by the send limits)."),
    f("reply", "fun(pkt: lp.packet, payload: lp.bytes|string): boolean", "Answers the packet in hand (addresses and ports swapped)."),
    f("timer", "fun(ms: integer, fn: function): integer", "Calls `fn` once in `ms` milliseconds (deferred work); returns its id."),
    f("cancel", "fun(id: integer): boolean", "Cancels a timer."),
];

/// The packet (the entry function's first argument).
pub const PKT: &[Field] = &[
    f("ip", "lp.ip?", "The IPv4 header (nil for another family)."),
    f("ip6", "lp.ip6?", "The IPv6 header."),
    f("tcp", "lp.tcp?", "The TCP header."),
    f("udp", "lp.udp?", "The UDP header."),
    f("icmp", "lp.icmp?", "The ICMP header (IPv4)."),
    f("icmp6", "lp.icmp?", "The ICMPv6 header."),
    f(
        "eth",
        "lp.eth?",
        "The Ethernet header, where the hook has one (netdev, bridge, ingress).",
    ),
    f(
        "ct",
        "lp.ct?",
        "Conntrack's entry for the packet (nil without one).",
    ),
    f(
        "meta",
        "lp.meta",
        "The packet's metadata (mark, interfaces, hook).",
    ),
    f("len", "integer", "Length from the network header on."),
    f(
        "bytes",
        "fun(self: lp.packet, offset: integer, len: integer): lp.bytes",
        "Bytes of the packet (from the network header).",
    ),
    f(
        "u8",
        "fun(self: lp.packet, offset: integer): integer",
        "The byte at offset.",
    ),
    f(
        "u16",
        "fun(self: lp.packet, offset: integer): integer",
        "A big-endian 16-bit number at offset.",
    ),
    f(
        "u32",
        "fun(self: lp.packet, offset: integer): integer",
        "A big-endian 32-bit number at offset.",
    ),
    f(
        "set_u8",
        "fun(self: lp.packet, offset: integer, v: integer)",
        "Writes a byte (checksums are not fixed: see fix_checksums).",
    ),
    f(
        "set_u16",
        "fun(self: lp.packet, offset: integer, v: integer)",
        "Writes a big-endian 16-bit number.",
    ),
    f(
        "set_u32",
        "fun(self: lp.packet, offset: integer, v: integer)",
        "Writes a big-endian 32-bit number.",
    ),
    f(
        "set_bytes",
        "fun(self: lp.packet, offset: integer, b: lp.bytes|string)",
        "Writes bytes.",
    ),
    f(
        "fix_checksums",
        "fun(self: lp.packet)",
        "Recomputes the IP and transport checksums after raw writes.",
    ),
];

const IP: &[Field] = &[
    f(
        "saddr",
        "string",
        "Source address (text; settable, checksums fixed).",
    ),
    f("daddr", "string", "Destination address."),
    f("protocol", "integer", "The transport protocol number."),
    f("ttl", "integer", "Time to live."),
    f("length", "integer", "Total length."),
    f("id", "integer", "Identification."),
    f("version", "integer", "4."),
    f(
        "hdrlength",
        "integer",
        "Header length in 32-bit words (IHL: 5 without options).",
    ),
    f("dscp", "integer", "DSCP."),
    f("ecn", "integer", "ECN bits."),
    f("frag_off", "integer", "Flags and fragment offset."),
    f("checksum", "integer", "Header checksum."),
];

const IP6: &[Field] = &[
    f("saddr", "string", "Source address (text)."),
    f("daddr", "string", "Destination address."),
    f("nexthdr", "integer", "Next header."),
    f("hoplimit", "integer", "Hop limit."),
    f("length", "integer", "Payload length."),
    f("version", "integer", "6."),
    f("dscp", "integer", "DSCP."),
    f("ecn", "integer", "ECN bits."),
    f("flowlabel", "integer", "Flow label."),
];

const TCP: &[Field] = &[
    f("sport", "integer", "Source port."),
    f("dport", "integer", "Destination port."),
    f("flags", "integer", "The flag bits."),
    f("syn", "boolean", "SYN."),
    f("ack", "boolean", "ACK."),
    f("fin", "boolean", "FIN."),
    f("rst", "boolean", "RST."),
    f("psh", "boolean", "PSH."),
    f("urg", "boolean", "URG."),
    f("ece", "boolean", "ECE."),
    f("cwr", "boolean", "CWR."),
    f("seq", "integer", "Sequence number."),
    f("ack_seq", "integer", "Acknowledgment number."),
    f("window", "integer", "Window."),
    f("doff", "integer", "Data offset, bytes."),
    f("checksum", "integer", "Checksum."),
    f("urgptr", "integer", "Urgent pointer."),
    f("payload", "lp.view", "The segment's payload."),
    f("mss", "integer?", "The MSS option."),
    f("wscale", "integer?", "The window scale option."),
    f("sack_perm", "boolean", "SACK permitted."),
    f("ts_val", "integer?", "Timestamp value."),
    f("ts_ecr", "integer?", "Timestamp echo reply."),
];

const UDP: &[Field] = &[
    f("sport", "integer", "Source port."),
    f("dport", "integer", "Destination port."),
    f("length", "integer", "Length."),
    f("checksum", "integer", "Checksum."),
    f("payload", "lp.view", "The datagram's payload."),
];

const ICMP: &[Field] = &[
    f("type", "integer", "Type."),
    f("code", "integer", "Code."),
    f("checksum", "integer", "Checksum."),
    f("id", "integer", "Identifier (echo)."),
    f("sequence", "integer", "Sequence number (echo)."),
];

const META: &[Field] = &[
    f("mark", "integer", "The packet mark (settable)."),
    f("len", "integer", "Length."),
    f("l4proto", "integer", "The transport protocol number."),
    f("nfproto", "integer", "The family (2 IPv4, 10 IPv6)."),
    f("hook", "integer", "The netfilter hook number."),
    f("iifname", "string", "Input interface."),
    f("oifname", "string", "Output interface."),
];

const CT: &[Field] = &[
    f(
        "state",
        "string",
        "new, established, related, untracked or invalid.",
    ),
    f("mark", "integer", "The connection mark (settable)."),
    f("id", "integer", "The connection's id (nft's ct id)."),
];

const ETH: &[Field] = &[
    f("dst", "string", "Destination MAC (text)."),
    f("src", "string", "Source MAC."),
    f("type", "integer", "EtherType."),
];

/// A payload: a window on the packet's bytes.
pub const VIEW: &[Field] = &[
    f(
        "sub",
        "fun(self: lp.view, offset: integer, len?: integer): lp.view",
        "A part of the view.",
    ),
    f(
        "find",
        "fun(self: lp.view, pattern: string, init?: integer, plain?: boolean): integer?",
        "string.find on its bytes.",
    ),
    f(
        "as",
        "fun(self: lp.view, proto: string): table?",
        "Reads it as a protocol defined with lp.proto.",
    ),
];

/// The protocol classes, by the packet field that gives them.
pub const CLASSES: &[Class] = &[
    Class {
        key: "ip",
        class: "lp.ip",
        doc: "An IPv4 header.",
        fields: IP,
    },
    Class {
        key: "ip6",
        class: "lp.ip6",
        doc: "An IPv6 header.",
        fields: IP6,
    },
    Class {
        key: "tcp",
        class: "lp.tcp",
        doc: "A TCP header.",
        fields: TCP,
    },
    Class {
        key: "udp",
        class: "lp.udp",
        doc: "A UDP header.",
        fields: UDP,
    },
    Class {
        key: "icmp",
        class: "lp.icmp",
        doc: "An ICMP or ICMPv6 header.",
        fields: ICMP,
    },
    Class {
        key: "icmp6",
        class: "lp.icmp",
        doc: "An ICMP or ICMPv6 header.",
        fields: ICMP,
    },
    Class {
        key: "meta",
        class: "lp.meta",
        doc: "The packet's metadata.",
        fields: META,
    },
    Class {
        key: "ct",
        class: "lp.ct",
        doc: "Conntrack's entry.",
        fields: CT,
    },
    Class {
        key: "eth",
        class: "lp.eth",
        doc: "An Ethernet header.",
        fields: ETH,
    },
];

pub fn class(key: &str) -> Option<&'static Class> {
    CLASSES.iter().find(|c| c.key == key)
}

/// The names of a class's fields, for messages.
pub fn field_names(fields: &[Field]) -> String {
    fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// The LuaLS annotations (`---@meta`) of the whole API.
pub fn stubs() -> String {
    let mut s = String::from(
        "---@meta luapkt\n\
         -- LuaLS annotations for luapkt scripts: `lpctl script stubs > luapkt.lua`, then add its\n\
         -- directory to Lua.workspace.library. Written by lpctl from cli/src/lua_api.rs.\n\n",
    );
    let class = |s: &mut String, name: &str, doc: &str, fields: &[Field]| {
        s.push_str(&format!("---{doc}\n---@class {name}\n"));
        for f in fields {
            s.push_str(&format!("---@field {} {} {}\n", f.name, f.ty, f.doc));
        }
        s.push('\n');
    };
    class(
        &mut s,
        "lp.packet",
        "The packet a call judges (the entry function's first argument).",
        PKT,
    );
    let mut seen = Vec::new();
    for c in CLASSES {
        if !seen.contains(&c.class) {
            seen.push(c.class);
            class(&mut s, c.class, c.doc, c.fields);
        }
    }
    class(
        &mut s,
        "lp.view",
        "A window on the packet's bytes (a payload).",
        VIEW,
    );
    s.push_str(
        "---@class lp.bytes\n---@class lp.bytes_lib\n---@class lp.cidr\n\
         ---@field contains fun(self: lp.cidr, addr: string): boolean\n\
         ---@class lp.map\n---@class lp.packet_lib\n\n",
    );
    class(&mut s, "lp.lib", "The luapkt library.", LP);
    s.push_str("---@type lp.lib\nlp = {}\n\n");
    s.push_str(
        "---The entry function (another may be named by the rule's `function F`).\n\
         ---@param pkt lp.packet\n---@param arg string? the rule's `arg S`\n\
         ---@return integer|boolean|nil verdict\n\
         function process_packet(pkt, arg) end\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `static const int NAME_keys[] = {K_a, K_b, ...};` of lp_fields.c, by NAME.
    fn guest_keys() -> Vec<(String, BTreeSet<String>)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../guest-lua/c/lib/lp_fields.c"
        );
        let c = std::fs::read_to_string(path).unwrap();
        let mut out = Vec::new();
        let mut rest = c.as_str();
        while let Some(at) = rest.find("static const int ") {
            rest = &rest[at + "static const int ".len()..];
            let Some((name, tail)) = rest.split_once("_keys[] = {") else {
                continue;
            };
            let (list, _) = tail.split_once("};").unwrap();
            let keys = list
                .split(',')
                .map(|k| k.trim().trim_start_matches("K_").to_string())
                .filter(|k| !k.is_empty())
                .collect();
            out.push((name.to_string(), keys));
        }
        out
    }

    fn set(fields: &[Field]) -> BTreeSet<String> {
        fields.iter().map(|f| f.name.to_string()).collect()
    }

    #[test]
    fn the_classes_are_the_guests() {
        let keys = guest_keys();
        assert!(keys.len() >= 10, "{keys:?}");
        for (name, keys) in keys {
            let ours = match name.as_str() {
                "pkt" => set(PKT),
                "view" => set(VIEW),
                "icmp" => set(ICMP),
                other => set(class(other)
                    .unwrap_or_else(|| panic!("class {other}"))
                    .fields),
            };
            assert_eq!(ours, keys, "class {name}: lua_api.rs against lp_fields.c");
        }
    }

    #[test]
    fn stubs_name_every_field() {
        let s = stubs();
        assert!(s.starts_with("---@meta"));
        for c in CLASSES {
            for f in c.fields {
                assert!(s.contains(&format!("---@field {} {}", f.name, f.ty)));
            }
        }
        assert!(s.contains("---@field dport integer"));
        assert!(s.contains("---@field ACCEPT integer"));
    }
}
