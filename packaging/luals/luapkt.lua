---@meta luapkt
-- LuaLS annotations for luapkt scripts: `lpctl script stubs > luapkt.lua`, then add its
-- directory to Lua.workspace.library. Written by lpctl from cli/src/lua_api.rs.

---The packet a call judges (the entry function's first argument).
---@class lp.packet
---@field ip lp.ip? The IPv4 header (nil for another family).
---@field ip6 lp.ip6? The IPv6 header.
---@field tcp lp.tcp? The TCP header.
---@field udp lp.udp? The UDP header.
---@field icmp lp.icmp? The ICMP header (IPv4).
---@field icmp6 lp.icmp? The ICMPv6 header.
---@field eth lp.eth? The Ethernet header, where the hook has one (netdev, bridge, ingress).
---@field ct lp.ct? Conntrack's entry for the packet (nil without one).
---@field meta lp.meta The packet's metadata (mark, interfaces, hook).
---@field len integer Length from the network header on.
---@field bytes fun(self: lp.packet, offset: integer, len: integer): lp.bytes Bytes of the packet (from the network header).
---@field u8 fun(self: lp.packet, offset: integer): integer The byte at offset.
---@field u16 fun(self: lp.packet, offset: integer): integer A big-endian 16-bit number at offset.
---@field u32 fun(self: lp.packet, offset: integer): integer A big-endian 32-bit number at offset.
---@field set_u8 fun(self: lp.packet, offset: integer, v: integer) Writes a byte (checksums are not fixed: see fix_checksums).
---@field set_u16 fun(self: lp.packet, offset: integer, v: integer) Writes a big-endian 16-bit number.
---@field set_u32 fun(self: lp.packet, offset: integer, v: integer) Writes a big-endian 32-bit number.
---@field set_bytes fun(self: lp.packet, offset: integer, b: lp.bytes|string) Writes bytes.
---@field fix_checksums fun(self: lp.packet) Recomputes the IP and transport checksums after raw writes.

---An IPv4 header.
---@class lp.ip
---@field saddr string Source address (text; settable, checksums fixed).
---@field daddr string Destination address.
---@field protocol integer The transport protocol number.
---@field ttl integer Time to live.
---@field length integer Total length.
---@field id integer Identification.
---@field version integer 4.
---@field hdrlength integer Header length in 32-bit words (IHL: 5 without options).
---@field dscp integer DSCP.
---@field ecn integer ECN bits.
---@field frag_off integer Flags and fragment offset.
---@field checksum integer Header checksum.

---An IPv6 header.
---@class lp.ip6
---@field saddr string Source address (text).
---@field daddr string Destination address.
---@field nexthdr integer Next header.
---@field hoplimit integer Hop limit.
---@field length integer Payload length.
---@field version integer 6.
---@field dscp integer DSCP.
---@field ecn integer ECN bits.
---@field flowlabel integer Flow label.

---A TCP header.
---@class lp.tcp
---@field sport integer Source port.
---@field dport integer Destination port.
---@field flags integer The flag bits.
---@field syn boolean SYN.
---@field ack boolean ACK.
---@field fin boolean FIN.
---@field rst boolean RST.
---@field psh boolean PSH.
---@field urg boolean URG.
---@field ece boolean ECE.
---@field cwr boolean CWR.
---@field seq integer Sequence number.
---@field ack_seq integer Acknowledgment number.
---@field window integer Window.
---@field doff integer Data offset, bytes.
---@field checksum integer Checksum.
---@field urgptr integer Urgent pointer.
---@field payload lp.view The segment's payload.
---@field mss integer? The MSS option.
---@field wscale integer? The window scale option.
---@field sack_perm boolean SACK permitted.
---@field ts_val integer? Timestamp value.
---@field ts_ecr integer? Timestamp echo reply.

---A UDP header.
---@class lp.udp
---@field sport integer Source port.
---@field dport integer Destination port.
---@field length integer Length.
---@field checksum integer Checksum.
---@field payload lp.view The datagram's payload.

---An ICMP or ICMPv6 header.
---@class lp.icmp
---@field type integer Type.
---@field code integer Code.
---@field checksum integer Checksum.
---@field id integer Identifier (echo).
---@field sequence integer Sequence number (echo).

---The packet's metadata.
---@class lp.meta
---@field mark integer The packet mark (settable).
---@field len integer Length.
---@field l4proto integer The transport protocol number.
---@field nfproto integer The family (2 IPv4, 10 IPv6).
---@field hook integer The netfilter hook number.
---@field iifname string Input interface.
---@field oifname string Output interface.

---Conntrack's entry.
---@class lp.ct
---@field state string new, established, related, untracked or invalid.
---@field mark integer The connection mark (settable).
---@field id integer The connection's id (nft's ct id).

---An Ethernet header.
---@class lp.eth
---@field dst string Destination MAC (text).
---@field src string Source MAC.
---@field type integer EtherType.

---A window on the packet's bytes (a payload).
---@class lp.view
---@field sub fun(self: lp.view, offset: integer, len?: integer): lp.view A part of the view.
---@field find fun(self: lp.view, pattern: string, init?: integer, plain?: boolean): integer? string.find on its bytes.
---@field as fun(self: lp.view, proto: string): table? Reads it as a protocol defined with lp.proto.

---@class lp.bytes
---@class lp.bytes_lib
---@class lp.cidr
---@field contains fun(self: lp.cidr, addr: string): boolean
---@class lp.map
---@class lp.packet_lib

---The luapkt library.
---@class lp.lib
---@field ACCEPT integer Verdict: accept the packet (nft's accept).
---@field DROP integer Verdict: drop the packet.
---@field CONTINUE integer Verdict: go on with the rule's next statement (true and nothing do too).
---@field BREAK integer Verdict: the rule does not match (false does too); the chain goes on.
---@field QUEUE fun(queue: integer): integer Verdict: queue the packet to nfqueue `queue` (not at netdev or ingress hooks).
---@field log fun(...: any) A line in the script's log at level info (`lpctl script log NAME`).
---@field debug fun(...: any) A line at level debug (not printed to the kernel log).
---@field warn fun(...: any) A line at level warn.
---@field now fun(): integer The kernel's monotonic clock, nanoseconds.
---@field cidr fun(prefix: string): lp.cidr An address prefix, `lp.cidr("10.0.0.0/8"):contains(pkt.ip.saddr)`.
---@field bytes lp.bytes_lib Byte arrays: `lp.bytes.new(n)`, `lp.bytes.from(string)`.
---@field map fun(spec: table): lp.map Declares a map shared by all CPUs (at the script's top level): `lp.map{name=, type="hash"|"lru", key_size=, value="number"|"bytes", value_size=, max_entries=}`.
---@field proto table Protocols defined in Lua (`lp.proto.define`), read with `view:as(name)`.
---@field packet lp.packet_lib Packet builders for lp.send: `lp.packet.udp{}`, `.tcp{}`, `.icmp{}`.
---@field send fun(packet: lp.bytes|string): boolean Sends an IP packet built by the script (bounded by the send limits).
---@field reply fun(pkt: lp.packet, payload: lp.bytes|string): boolean Answers the packet in hand (addresses and ports swapped).
---@field timer fun(ms: integer, fn: function): integer Calls `fn` once in `ms` milliseconds (deferred work); returns its id.
---@field cancel fun(id: integer): boolean Cancels a timer.

---@type lp.lib
lp = {}

---The entry function (another may be named by the rule's `function F`).
---@param pkt lp.packet
---@param arg string? the rule's `arg S`
---@return integer|boolean|nil verdict
function process_packet(pkt, arg) end
